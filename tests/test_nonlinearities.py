import numpy as np
import pytest
import torch
from scipy import stats

from multiarg.inputs import InputHistogram
from multiarg.nonlinearities import (AnalysisConfig, analyse_function, curvature_rows, normalised_curvature,
                                     paper_check_note, spectra_rows)


def gaussian_hist(n_args: int, bins: int, points: int = 400_000) -> dict:
    torch.manual_seed(0)
    h = InputHistogram(n_args, bins, 5.0)
    h.add(torch.randn(points, n_args))
    return {"n_args": n_args, "bins": bins, **h.result()}


@pytest.fixture(scope="module")
def hist2():
    return gaussian_hist(2, 80)


def test_product_is_a_saddle_with_its_power_at_l2(hist2):
    r = analyse_function(lambda x: x[..., 0] * x[..., 1], hist2, AnalysisConfig())
    np.testing.assert_allclose(r["coef"], [0, 0, 1, 0, 0, 0], atol=1e-6)
    assert r["r2"] == pytest.approx(1.0) and r["curvature"] == pytest.approx(-0.25, abs=1e-6)
    assert r["curvature_normalised"] == pytest.approx(-0.5, abs=1e-6)
    assert int(np.argmax(r["spectrum"])) == 2 and r["spectrum_fraction"][2] > 0.95


def test_linear_function_puts_its_power_at_l1_and_has_no_curvature(hist2):
    r = analyse_function(lambda x: 2 * x[..., 0] - x[..., 1] + 0.3, hist2, AnalysisConfig(fit_weighting="density"))
    assert abs(r["curvature"]) < 1e-9 and r["r2"] == pytest.approx(1.0)
    assert r["spectrum_fraction"][1] > 0.95


def test_three_argument_spectra_separate_dipole_and_quadrupole():
    hist = gaussian_hist(3, 24)
    quad = analyse_function(lambda x: x[..., 0] * x[..., 2], hist, AnalysisConfig(l_max=4))
    lin = analyse_function(lambda x: x[..., 1] - x[..., 2], hist, AnalysisConfig(l_max=4))
    assert int(np.argmax(quad["spectrum"][1:])) + 1 == 2 and quad["spectrum_fraction"][2] > 0.9
    assert lin["spectrum_fraction"][1] > 0.9 and "curvature" not in lin


def test_normalised_curvature_range():
    assert normalised_curvature(np.array([1.0, 1.0, 0, 0, 0, 0])) == pytest.approx(0.5)
    assert normalised_curvature(np.array([1.0, 0.0, 0, 0, 0, 0])) == 0.0
    assert normalised_curvature(np.array([1.0, -1.0, 0, 0, 0, 0])) == pytest.approx(-0.5)


def _record(arch, dataset, curvature, kind="learned"):
    return {"kind": kind, "n_args": 2, "arch": arch, "dataset": dataset, "curvature": curvature, "r2": 0.9,
            "spectrum_fraction": np.array([0.1, 0.5, 0.5]), "spectrum": np.array([1.0, 2.0, 2.0])}


def test_curvature_rows_count_and_test_per_group_and_pooled():
    records = ([_record("cnn", "mnist", -1.0)] * 10 + [_record("cnn", "mnist", 1.0)] * 2
               + [_record("cnn", "cifar10", -1.0)] * 9 + [_record("cnn", "cifar10", 1.0)] * 3)
    rows = {(r["arch"], r["dataset"]): r for r in curvature_rows(records)}
    pooled = rows["cnn", "all"]
    assert (pooled["k_negative"], pooled["n"]) == (19, 24)
    assert float(pooled["p_two_sided"]) == pytest.approx(stats.binomtest(19, 24).pvalue, rel=1e-2)
    assert float(pooled["p_one_sided_more_negative"]) == pytest.approx(
        stats.binomtest(19, 24, alternative="greater").pvalue, rel=1e-2)
    assert float(pooled["p_one_sided_more_positive"]) == pytest.approx(
        stats.binomtest(19, 24, alternative="less").pvalue, rel=1e-2)
    assert pooled["verdict"].startswith("mostly negative")
    assert rows["cnn", "mnist"]["n"] == 12 and rows["all", "all"]["n"] == 24


def test_spectra_rows_average_over_functions():
    rows = spectra_rows([_record("mlp", "mnist", 1.0)] * 3)
    l1 = [r for r in rows if r["l"] == 1 and r["dataset"] == "mnist"][0]
    assert l1["n"] == 3 and float(l1["power_fraction_mean"]) == 0.5 and float(l1["power_fraction_sd"]) == 0


def test_paper_check_note_states_the_inconsistency():
    note = paper_check_note()
    assert f"{stats.binomtest(19, 24).pvalue:.2g}" in note and "cannot both hold" in note
