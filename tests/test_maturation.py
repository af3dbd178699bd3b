import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from multiarg.activations import InnerNet, values_at
from multiarg.claims import maturation_claims
from multiarg.maturation import mature_epoch, maturation_rows, maturation_test, r2_by_epoch, shared_variance
from multiarg.tables import write_table


def test_shared_variance_ignores_gain_and_offset_and_is_nan_for_a_constant():
    rng = np.random.default_rng(0)
    f, g = rng.normal(size=200), rng.normal(size=200)
    assert shared_variance(-3 * f + 7, f) == pytest.approx(1.0)
    assert shared_variance(f + 0.5 * g, f) == pytest.approx(np.corrcoef(f + 0.5 * g, f)[0, 1] ** 2)
    assert np.isnan(shared_variance(np.full(200, 2.0), f))


def _net(seed: int) -> InnerNet:
    torch.manual_seed(seed)
    return InnerNet(2, hidden=16)


def test_snapshots_mature_at_the_first_epoch_sharing_the_threshold():
    final = _net(0)
    dead = _net(1)
    with torch.no_grad():  # a constant net: no shape, so it shares nothing
        dead.net[-1].weight.zero_()
    rescaled = _net(0)
    with torch.no_grad():  # the final shape at another gain and offset: already matured
        rescaled.net[-1].weight.mul_(-2.5)
        rescaled.net[-1].bias.add_(1.0)
    drifted = _net(2)
    snapshots = {"epochs": [0, 1, 2, 3, 4],
                 "snapshots": [n.state_dict() for n in (dead, drifted, rescaled, final, dead)]}
    points = np.stack(np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-2, 2, 21)), -1).reshape(-1, 2)
    r2 = r2_by_epoch(snapshots, 3, values_at(final, points), points)
    assert len(r2) == 4 and np.isnan(r2[0]) and r2[2] == pytest.approx(1.0) and r2[3] == pytest.approx(1.0)
    assert r2[1] == pytest.approx(shared_variance(values_at(drifted, points), values_at(final, points)))
    assert r2[1] < 0.9 and mature_epoch(r2, 0.9) == 2  # another random net shares about 0.41
    assert mature_epoch(r2, min(r2[1], 0.999)) == 1 and np.isnan(mature_epoch(np.full(3, np.nan), 0.9))
    with pytest.raises(ValueError, match="lack epochs"):
        r2_by_epoch({"epochs": [0, 2], "snapshots": snapshots["snapshots"][:2]}, 2, r2, points)


_SEEDS = itertools.count()


def _run(best: int, mature: float, dataset: str = "mnist", seed: int | None = None) -> dict:
    """A run grown from a session-I net of its own unless ``seed`` names one to share."""
    curve = np.linspace(0.2, 1.0, best + 1)
    seed = next(_SEEDS) if seed is None else seed
    return {"kind": "learned", "n_args": 2, "arch": "mlp", "dataset": dataset, "activation": "arg2", "seed": seed,
            "best_epoch": best,
            "mature_epoch": mature, "maturity_r2": curve}


def test_the_test_leaves_out_runs_that_cannot_fail_and_constant_functions():
    runs = [_run(10, 3) for _ in range(3)] + [_run(10, 7), _run(4, 2), _run(10, float("nan"))]
    test = maturation_test(runs, horizon=5)
    assert (test["k"], test["n"], test["n_short"], test["n_constant"]) == (3, 4, 1, 1)
    assert test["p_two_sided"] == pytest.approx(stats.binomtest(3, 4).pvalue)
    assert test["median_mature_epoch"] == 3 and test["median_best_epoch"] == 10  # over the five with a shape


def test_rows_give_a_verdict_and_the_median_curve(tmp_path):
    groups = {("learned", 2, "mlp", "mnist"): [_run(8, 2) for _ in range(10)],
              ("learned", 2, "mlp", "cifar10"): [_run(3, 1) for _ in range(2)],
              ("xavier-init", 2, "mlp", "mnist"): [{"kind": "xavier-init"}]}  # untrained: no snapshots, no row
    rows = {r["dataset"]: r for r in maturation_rows(groups, 0.9, 5)}
    assert set(rows) == {"mnist", "cifar10"}
    assert rows["mnist"]["verdict"] == "most mature by epoch 5, two-sided p < 0.05" and rows["mnist"]["k_mature"] == 10
    assert rows["mnist"]["median_r2_by_epoch"] == " ".join(f"{v:.2f}" for v in np.linspace(0.2, 1.0, 9)[:6])
    assert rows["cifar10"]["verdict"] == "n/a (no run trained past epoch 5)" and rows["cifar10"]["n_short"] == 2
    assert rows["cifar10"]["median_r2_by_epoch"].endswith("1.00 1.00 1.00")  # past the best epoch: 1
    late = maturation_rows({("learned", 2, "all", "all"): [_run(20, 9) for _ in range(8)]}, 0.9, 5)[0]
    assert late["verdict"] == "most not mature by epoch 5, two-sided p < 0.05"
    write_table(maturation_rows({("learned", 2, "all", "all"): [_run(8, 2) for _ in range(9)] + [_run(8, 6)]}, 0.9, 5),
                tmp_path / "maturation.csv")
    from multiarg.claims import read_rows

    (claim,) = maturation_claims(read_rows(str(tmp_path / "maturation.csv")))
    assert claim["measured"] == "9/10 matured by epoch 5; median epoch 2 of a best epoch 8"
    assert claim["vs_paper"] == "agrees"
    assert claim["p"] == f"{stats.binomtest(9, 10).pvalue:.3g}" and claim["interval95"].startswith("[0.55")
    write_table(maturation_rows({("learned", 2, "all", "all"): [_run(3, 1) for _ in range(4)]}, 0.9, 5),
                tmp_path / "short.csv")
    (short,) = maturation_claims(read_rows(str(tmp_path / "short.csv")))
    assert (short["p"], short["interval95"], short["vs_paper"]) == ("", "", "")
    assert short["measured"].startswith("0/0 matured by epoch 5 (+4 whose best epoch came by then, left out)")
