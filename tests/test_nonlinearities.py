import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from multiarg.analysis_figures import densest_slice

from multiarg.analysis import fit_quadratic, hermite_bessel_basis
from multiarg.inputs import InputHistogram
from multiarg.nonlinearities import (AnalysisConfig, analyse_function, curvature_rows, load_records,
                                     paper_check_note, region, spectra_rows, write_outputs, xavier_assignment)


def gaussian_hist(n_args: int, bins: int, points: int = 400_000, mean=0.0, std=1.0) -> dict:
    torch.manual_seed(0)
    h = InputHistogram(n_args, bins, 5.0)
    h.add(torch.as_tensor(mean, dtype=torch.float32) + std * torch.randn(points, n_args))
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


def test_saddles_and_the_bowl_share_l2_but_not_its_saddle_share(hist2):
    saddle = analyse_function(lambda x: x[..., 0] * x[..., 1], hist2, AnalysisConfig())
    bowl = analyse_function(lambda x: x[..., 0] ** 2 + x[..., 1] ** 2, hist2, AnalysisConfig())
    assert bowl["spectrum_fraction"][2] > 0.95 and bowl["curvature"] > 0
    assert saddle["saddle_share_l2"] > 0.99 and bowl["saddle_share_l2"] < 0.01
    assert bowl["curvature_other_weighting"] > 0 > saddle["curvature_other_weighting"]
    # x1^2 - x2^2 is the other saddle (m = +2), a quadrupole as much as x1 x2 (m = -2)
    diagonal = analyse_function(lambda x: x[..., 0] ** 2 - x[..., 1] ** 2, hist2, AnalysisConfig())
    assert diagonal["saddle_share_l2"] > 0.99 and diagonal["curvature"] < 0


def test_the_configured_weighting_gives_the_curvature_and_the_other_its_check(hist2):
    f = lambda x: x[..., 0] * x[..., 1] + abs(x[..., 0]) ** 3  # noqa: E731 (not a quadratic: weighting matters)
    assert AnalysisConfig().fit_weighting == "uniform"
    reg = region(hist2, AnalysisConfig().mass)
    points, mask = reg["points"], reg["mask"]
    uniform = fit_quadratic(points[mask], f(points[mask]))["curvature"]
    density = fit_quadratic(points[mask], f(points[mask]), reg["density"][mask])["curvature"]
    assert abs(uniform - density) > 0.1 * abs(uniform)
    r = analyse_function(f, hist2, AnalysisConfig())
    assert r["curvature"] == pytest.approx(uniform, rel=1e-5)
    assert r["curvature_other_weighting"] == pytest.approx(density, rel=1e-5)
    r = analyse_function(f, hist2, AnalysisConfig(fit_weighting="density"))
    assert r["curvature"] == pytest.approx(density, rel=1e-5)
    assert r["curvature_other_weighting"] == pytest.approx(uniform, rel=1e-5)


def test_the_spectrum_removes_the_input_weighted_mean():
    """On skewed inputs the mean over the inputs and the mean over the region's cells differ."""
    torch.manual_seed(0)
    h = InputHistogram(2, 60, 5.0)
    h.add(torch.stack([torch.distributions.Exponential(1.0).sample((200_000,)), torch.randn(200_000)], 1))
    hist = {"n_args": 2, "bins": 60, **h.result()}
    f = lambda x: x[..., 0] ** 2 + x[..., 1]  # noqa: E731
    r = analyse_function(f, hist, AnalysisConfig())
    reg = region(hist, 0.99)
    values, p = f(reg["points"]), reg["density"]
    weighted, plain = np.sum(p * values) / p.sum(), values[reg["mask"]].mean()
    assert abs(weighted - plain) > 1
    basis, labels = hermite_bessel_basis(reg["points"] - r["basis_centre"], 6, r["basis_scale"])
    coeffs = np.tensordot((values - weighted) * p, basis, 2) * reg["volume"]
    spectrum = [sum(c**2 for (l, _), c in zip(labels, coeffs) if l == order) for order in range(7)]
    np.testing.assert_allclose(r["spectrum"], spectrum, rtol=1e-5)


def test_the_basis_fitted_to_off_centre_narrow_inputs_keeps_orders_apart():
    hist = gaussian_hist(2, 80, mean=[0.5, 0.0], std=0.5)
    saddle = lambda x: (x[..., 0] - 0.5) * x[..., 1]  # noqa: E731 (a pure saddle where the inputs lie)
    fitted = analyse_function(saddle, hist, AnalysisConfig())
    fixed = analyse_function(saddle, hist, AnalysisConfig(basis_frame="origin", spectrum_offset="keep"))
    assert fitted["basis_centre"] == pytest.approx([0.5, 0.0], abs=0.02) and fitted["basis_scale"] == pytest.approx(
        0.5, abs=0.02)
    assert fitted["spectrum_fraction"][2] > 0.95 and fixed["spectrum_fraction"][2] < 0.7
    # a constant is absorbed by the next layer's bias, yet with its offset kept it shows up at l >= 1
    constant = lambda x: 1 + 0 * x[..., 0]  # noqa: E731
    removed = analyse_function(constant, hist, AnalysisConfig(basis_frame="origin"))
    kept = analyse_function(constant, hist, AnalysisConfig(basis_frame="origin", spectrum_offset="keep"))
    assert removed["spectrum"][1:].sum() < 1e-20 < 1e-3 < kept["spectrum"][1:].sum()


def test_correlated_inputs_mix_the_orders_of_the_isotropic_basis():
    """A limit the README states: the basis has one scale for both axes, so where the inputs are correlated the
    saddle x1 x2 no longer keeps its power at l = 2, nor x1 at l = 1, as they do for isotropic inputs."""
    torch.manual_seed(0)
    h = InputHistogram(2, 80, 5.0)
    h.add(torch.randn(400_000, 2) @ torch.linalg.cholesky(torch.tensor([[1.0, 0.8], [0.8, 1.0]])).T)
    correlated = {"n_args": 2, "bins": 80, **h.result()}
    saddle = analyse_function(lambda x: x[..., 0] * x[..., 1], correlated, AnalysisConfig())
    ramp = analyse_function(lambda x: x[..., 0], correlated, AnalysisConfig())
    assert 0.5 < saddle["spectrum_fraction"][2] < 0.7 and 0.55 < ramp["spectrum_fraction"][1] < 0.75


def test_records_and_tables_round_trip(hist2, tmp_path):
    cfg = AnalysisConfig()
    records = [{"kind": kind, "arch": "cnn", "dataset": "mnist", "activation": "arg2", "seed": 0,
                **analyse_function(lambda x: x[..., 0] * x[..., 1] + 0.1 * x[..., 0], hist2, cfg)}
               for kind in ("learned", "xavier-init")]
    tables = {t: str(tmp_path / f"{t}.csv") for t in ("fits", "curvature", "spectra")}
    write_outputs(records, str(tmp_path / "records.pt"), tables, "TEST", cfg)
    back = load_records(str(tmp_path / "records.pt"))["records"]
    assert back[0]["saddle_share_l2"] == records[0]["saddle_share_l2"]
    np.testing.assert_array_equal(back[1]["spectrum"], records[1]["spectrum"])
    assert "centred on the inputs, scale 1.0 x their RMS spread" in (tmp_path / "spectra.md").read_text()


def test_a_non_finite_inner_net_is_refused(hist2):
    with pytest.raises(ValueError, match="non-finite"):
        analyse_function(lambda x: x[..., 0] / 0 * x[..., 1], hist2, AnalysisConfig())


def test_three_argument_spectra_separate_dipole_and_quadrupole():
    hist = gaussian_hist(3, 24)
    quad = analyse_function(lambda x: x[..., 0] * x[..., 2], hist, AnalysisConfig(l_max=4))
    lin = analyse_function(lambda x: x[..., 1] - x[..., 2], hist, AnalysisConfig(l_max=4))
    assert int(np.argmax(quad["spectrum"][1:])) + 1 == 2 and quad["spectrum_fraction"][2] > 0.9
    assert lin["spectrum_fraction"][1] > 0.9 and "curvature" not in lin


def test_fig8_slices_a_3_arg_function_where_its_inputs_are():
    hist = gaussian_hist(3, 24, mean=[0.0, 0.0, 2.5], std=0.4)
    record = analyse_function(lambda x: x[..., 0] * x[..., 2], hist, AnalysisConfig(l_max=2))
    mid = len(record["axis"]) // 2
    assert not record["mask"][:, :, mid].any()  # the grid's middle slice would draw nothing
    assert abs(record["axis"][densest_slice(record["mask"])] - 2.5) < 0.5


_SEEDS = itertools.count()


def _record(arch, dataset, curvature, kind="learned", other=None, seed=None):
    """A function grown from a session-I net of its own unless ``seed`` names one to share."""
    other = curvature if other is None else other
    seed = next(_SEEDS) if seed is None else seed
    return {"kind": kind, "n_args": 2, "arch": arch, "dataset": dataset, "activation": "arg2", "seed": seed,
            "curvature": curvature, "r2": 0.9,
            "curvature_sign": int(np.sign(curvature)), "curvature_tie": "" if curvature else "flat",
            "curvature_other_weighting": other,
            "curvature_sign_other_weighting": int(np.sign(other)), "constant": False,
            "spectrum_fraction": np.array([0.1, 0.5, 0.5]), "spectrum": np.array([1.0, 2.0, 2.0]),
            "saddle_share_l2": 0.75}


def test_curvature_rows_count_and_test_per_group_and_pooled():
    records = ([_record("cnn", "mnist", -1.0) for _ in range(9)] + [_record("cnn", "mnist", -1.0, other=1.0)]
               + [_record("cnn", "mnist", 1.0) for _ in range(2)]
               + [_record("cnn", "cifar10", -1.0) for _ in range(9)]
               + [_record("cnn", "cifar10", 1.0) for _ in range(3)])
    rows = {(r["arch"], r["dataset"]): r for r in curvature_rows(records)}
    pooled = rows["cnn", "all"]
    assert (pooled["k_negative"], pooled["n"], pooled["k_negative_other_weighting"]) == (19, 24, 18)
    assert float(pooled["p_two_sided"]) == pytest.approx(stats.binomtest(19, 24).pvalue, rel=1e-2)
    assert float(pooled["p_one_sided_more_negative"]) == pytest.approx(
        stats.binomtest(19, 24, alternative="greater").pvalue, rel=1e-2)
    assert float(pooled["p_one_sided_more_positive"]) == pytest.approx(
        stats.binomtest(19, 24, alternative="less").pvalue, rel=1e-2)
    assert pooled["verdict"].startswith("mostly negative")
    assert rows["cnn", "mnist"]["n"] == 12 and rows["all", "all"]["n"] == 24


def test_learned_rows_test_the_change_from_each_nets_own_start():
    """Each learned function is paired with its own session-I start by setting and seed, never with another's."""
    def pair(dataset, seed, before, after):
        common = {"dataset": dataset, "activation": "arg2", "seed": seed}
        return [{**_record("cnn", dataset, before, "start"), **common, "curvature_normalised": before / 4},
                {**_record("cnn", dataset, after, "learned"), **common, "curvature_normalised": after / 4}]

    # mnist: 6 starts negative, 3 positive; 3 turn negative, 1 turns positive. cifar10: nothing changes
    flips = [(-1.0, -1.0)] * 5 + [(-1.0, 1.0)] + [(1.0, -1.0)] * 3
    records = [r for s, (a, b) in enumerate(flips) for r in pair("mnist", s, a, b)]
    records += [r for s in range(4) for r in pair("cifar10", s, 1.0, 1.0)]
    rows = {(r["kind"], r["dataset"]): r for r in curvature_rows(records)}
    mnist = rows["learned", "mnist"]
    assert (mnist["k_negative_at_start"], mnist["k_negative"], mnist["to_negative"], mnist["to_positive"]) == (
        6, 8, 3, 1)
    assert mnist["change_p"] == f"{stats.binomtest(3, 4).pvalue:.3g}"
    assert mnist["change_verdict"] == "not significant (McNemar p >= 0.05)"
    shift = stats.ttest_rel([b / 4 for _, b in flips], [a / 4 for a, _ in flips])
    assert mnist["curvature_change_p"] == f"{shift.pvalue:.3g}"
    assert rows["learned", "cifar10"]["change_verdict"] == "n/a (no sign changed)"
    assert rows["learned", "all"]["to_negative"] == 3 and rows["start", "all"]["k_negative"] == 6
    assert rows["start", "mnist"]["change_verdict"] == ""  # the starts are not tested against themselves
    many = curvature_rows([r for s in range(8) for r in pair("mnist", s, 1.0, -1.0)])
    assert {r["change_verdict"] for r in many if r["kind"] == "learned"} == {"turned negative, McNemar p < 0.05"}


def test_flat_fits_and_ridges_are_ties_left_out_of_n():
    records = ([_record("mlp", "mnist", -1.0) for _ in range(5)] + [_record("mlp", "mnist", 1e-33) for _ in range(3)]
               + [_record("mlp", "mnist", 1.0)] + [_record("mlp", "mnist", 0.0, kind="xavier-init") for _ in range(2)]
               + [_record("mlp", "mnist", -0.01)])
    for r in records[5:8]:  # rounding noise of either sign
        r.update(curvature_sign=0, curvature_tie="flat", curvature_sign_other_weighting=0)
    records[-1].update(curvature_sign=0, curvature_tie="ridge", r2=0.5)  # tied, yet curved: its R² counts
    rows = {(r["kind"], r["dataset"]): r for r in curvature_rows(records)}
    learned = rows["learned", "mnist"]
    counts = (learned["k_negative"], learned["n"], learned["n_flat"], learned["n_ridge"],
              learned["k_negative_other_weighting"])
    assert counts == (5, 6, 3, 1, 6)
    assert learned["r2_mean"] == f"{(6 * 0.9 + 0.5) / 7:.3f}"
    assert float(learned["p_two_sided"]) == pytest.approx(stats.binomtest(5, 6).pvalue, rel=1e-2)
    xavier = rows["xavier-init", "mnist"]
    assert (xavier["n"], xavier["n_flat"], xavier["p_two_sided"], xavier["verdict"]) == (0, 2, "nan",
                                                                                           "n/a (every fit tied)")


def test_a_dead_inner_net_is_flat_and_a_trained_one_is_not(hist2):
    from multiarg.activations import InnerNet

    torch.manual_seed(0)
    net = InnerNet(2)
    live = analyse_function(net, hist2, AnalysisConfig())
    with torch.no_grad():
        net.net[0].bias.fill_(-100.0)  # every first-layer ReLU off: the net is its output bias
    dead = analyse_function(net, hist2, AnalysisConfig())
    assert live["curvature_sign"] != 0 and live["quadratic_size"] > 1e-3
    assert dead["curvature_sign"] == dead["curvature_sign_other_weighting"] == 0
    assert dead["curvature_normalised"] == 0.0  # a plane's, not the noise's (Fig. 7f, the RNN table)
    assert dead["constant"] and np.isnan(dead["spectrum_fraction"]).all() and not live["constant"]


def test_constant_functions_are_left_out_of_the_spectra_and_counted():
    dead = {**_record("mlp", "mnist", 0.0), "constant": True, "spectrum_fraction": np.full(3, np.nan)}
    rows = spectra_rows([_record("mlp", "mnist", 1.0) for _ in range(2)] + [dead])
    l1 = [r for r in rows if r["l"] == 1 and r["dataset"] == "mnist"][0]
    assert (l1["n"], l1["n_constant"], l1["power_fraction_mean"]) == (2, 1, "0.5000")
    assert spectra_rows([dead]) == []


def test_spectra_rows_average_over_functions():
    rows = spectra_rows([_record("mlp", "mnist", 1.0) for _ in range(3)])
    l1 = [r for r in rows if r["l"] == 1 and r["dataset"] == "mnist"][0]
    assert l1["n"] == 3 and float(l1["power_fraction_mean"]) == 0.5 and float(l1["power_fraction_sd"]) == 0
    l2 = [r for r in rows if r["l"] == 2 and r["dataset"] == "mnist"][0]
    assert float(l2["saddle_share_mean"]) == 0.75 and l1["saddle_share_mean"] == ""


def test_spectra_rows_sample_sd_and_peak_order_over_l_at_least_1():
    records = [{**_record("mlp", "mnist", 1.0), "spectrum_fraction": np.array(v)}
               for v in ([2.0, 0.4, 0.6], [2.0, 0.6, 0.4])]
    rows = {r["l"]: r for r in spectra_rows(records) if r["dataset"] == "mnist"}
    assert rows[1]["power_fraction_sd"] == "0.1414"  # sample SD (ddof = 1) of 0.4 and 0.6
    # l = 0 holds the most power in both, but the peak is the largest order l >= 1
    assert (rows[0]["peak_l_share"], rows[1]["peak_l_share"], rows[2]["peak_l_share"]) == ("", "0.500", "0.500")
    one = {r["l"]: r for r in spectra_rows([{**_record("mlp", "mnist", 1.0), "spectrum_fraction": np.array(
        [2.0, 0.3, 0.7])}]) if r["dataset"] == "mnist"}
    assert one[2]["peak_l_share"] == "1.000" and one[1]["peak_l_share"] == "0.000"


def test_spectra_rows_test_learned_against_xavier_init_at_l1_and_l2():
    def rec(kind, l2):
        return {**_record("cnn", "mnist", -1.0, kind), "spectrum_fraction": np.array([0.0, 1 - l2, l2])}

    records = [rec("learned", v) for v in (0.7, 0.8, 0.75)] + [rec("xavier-init", v) for v in (0.1, 0.2, 0.15)]
    rows = {(r["kind"], r["dataset"], r["l"]): r for r in spectra_rows(records)}
    welch = stats.ttest_ind([0.7, 0.8, 0.75], [0.1, 0.2, 0.15], equal_var=False)
    assert rows["learned", "mnist", 2]["vs_xavier_init_p"] == f"{welch.pvalue:.3g}"
    assert rows["learned", "mnist", 2]["verdict"] == "learned more at l = 2, Welch p < 0.05"
    assert rows["learned", "mnist", 1]["verdict"] == "learned less at l = 1, Welch p < 0.05"
    assert rows["learned", "mnist", 0]["verdict"] == rows["xavier-init", "mnist", 2]["verdict"] == ""


def test_spectra_rows_test_learned_against_their_own_starts_paired():
    def rec(kind, seed, l2):
        return {**_record("cnn", "mnist", -1.0, kind), "activation": "arg2", "seed": seed,
                "spectrum_fraction": np.array([0.0, 1 - l2, l2])}

    before, after = [0.30, 0.20, 0.25, 0.40], [0.35, 0.24, 0.31, 0.44]  # each up by 0.04-0.06
    records = [rec("start", s, v) for s, v in enumerate(before)] + [rec("learned", s, v) for s, v in enumerate(after)]
    records.append(rec("learned", 9, 0.9))  # no start of its own: left out of the pairs
    rows = {(r["kind"], r["dataset"], r["l"]): r for r in spectra_rows(records)}
    paired = stats.ttest_rel(after, before)
    assert rows["learned", "mnist", 2]["vs_start_p"] == f"{paired.pvalue:.3g}"
    assert rows["learned", "mnist", 2]["vs_start_verdict"] == "more at l = 2 than at the start, paired t p < 0.05"
    assert rows["learned", "mnist", 1]["vs_start_verdict"] == "less at l = 1 than at the start, paired t p < 0.05"
    assert rows["learned", "mnist", 0]["vs_start_verdict"] == rows["start", "mnist", 2]["vs_start_verdict"] == ""


def test_a_nets_twin_on_another_dataset_adds_no_evidence_to_a_pooled_test():
    """A seed's nets on MNIST and CIFAR-10 grow from one session-I net: pooled, they are one unit, so a copy of each
    on a second dataset leaves every pooled test as it was on the first alone."""
    def rec(kind, dataset, seed, l2, start=0.0):
        return {**_record("cnn", dataset, -1.0 if seed < 5 else 1.0, kind, seed=seed), "r2": 0.9 + l2 / 10,
                "curvature_normalised": l2 + start, "spectrum_fraction": np.array([0.0, 1 - l2 - start, l2 + start])}

    shares = [0.30, 0.42, 0.35, 0.50, 0.38, 0.33]
    learned = [rec(kind, "mnist", s, v, 0.1 * (kind == "start") - s / 100) for kind in ("learned", "start")
               for s, v in enumerate(shares)]
    xavier = [rec("xavier-init", "mnist", 100 + s, v / 2) for s, v in enumerate(shares)]
    one = learned + xavier
    twice = one + [{**r, "dataset": "cifar10"} for r in learned]
    by_setting = lambda rows: {(r["kind"], r["dataset"], r.get("l")): r for r in rows}  # noqa: E731
    for rows in (curvature_rows, spectra_rows):
        alone, pooled = by_setting(rows(one)), by_setting(rows(twice))
        for l in ((None,) if rows is curvature_rows else (1, 2)):
            first, both = alone["learned", "all", l], pooled["learned", "all", l]
            assert int(both["n"]) == 2 * int(first["n"])
            tested = [k for k in first if k.endswith(("_p", "p_two_sided", "ci95", "verdict", "ci95_low", "ci95_high"))
                      and first[k]]
            assert len(tested) >= (10 if rows is curvature_rows else 6)
            assert {k: both[k] for k in tested} == {k: first[k] for k in tested}


def test_each_xavier_init_is_analysed_in_one_setting_only():
    """Pooled over settings, the xavier-init group must hold distinct networks: the 8 inits of 4 settings with
    2 each go out in seed blocks, each over the inputs of a learned run of its own setting."""
    inits = [{"n_args": 2, "seed": s} for s in (7, 0, 5, 1, 2, 3, 4, 6)] + [{"n_args": 3, "seed": s} for s in range(4)]
    settings = [("cifar10", "cnn"), ("cifar10", "mlp"), ("mnist", "cnn"), ("mnist", "mlp")]
    runs = [(d, a, act, s) for d, a in settings for act in ("arg2", "arg2-xavier") for s in range(3)]
    runs += [(d, a, "arg3", s) for d, a in settings for s in range(1)]
    pairs = [(run, init["n_args"], init["seed"]) for run, init in xavier_assignment(inits, runs)]
    assert pairs[:8] == [(("cifar10", "cnn", "arg2", 0), 2, 0), (("cifar10", "cnn", "arg2", 1), 2, 1),
                         (("cifar10", "mlp", "arg2", 0), 2, 2), (("cifar10", "mlp", "arg2", 1), 2, 3),
                         (("mnist", "cnn", "arg2", 0), 2, 4), (("mnist", "cnn", "arg2", 1), 2, 5),
                         (("mnist", "mlp", "arg2", 0), 2, 6), (("mnist", "mlp", "arg2", 1), 2, 7)]
    assert pairs[8:] == [((d, a, "arg3", 0), 3, k) for k, (d, a) in enumerate(settings)]
    # one setting: init seed j over learned seed j, as before inits were dealt out
    one = xavier_assignment(inits[:2], [("mnist", "mlp", "arg2", s) for s in (1, 0)])
    assert [(run[3], init["seed"]) for run, init in one] == [(0, 0), (1, 7)]
    with pytest.raises(ValueError, match="cannot be shared out equally among the 4 settings"):
        xavier_assignment(inits[:6], runs)
    with pytest.raises(ValueError, match="4 untrained arg2-xavier inits to analyse but only 3"):
        xavier_assignment(inits[:8], [r for r in runs if r[:2] in settings[:2]])


def test_paper_check_note_states_the_inconsistency():
    note = paper_check_note()
    assert f"{stats.binomtest(19, 24).pvalue:.2g}" in note and "cannot both hold" in note
