"""How soon a learned nonlinearity takes its final shape: the paper's "mature into typical two-dimensional spatial
patterns within 1-5 epochs in general" (Fig. 5), measured. Each session-II snapshot up to the best epoch is
compared with the final (best-epoch) function over the final function's input region, and a run has matured by
the first epoch whose snapshot explains a threshold share of the final function's variance there."""
from __future__ import annotations

import numpy as np

from .activations import inner_from_state, values_at
from .analysis import binomial_test, by_start_test, start_key


def shared_variance(a: np.ndarray, b: np.ndarray) -> float:
    """Squared correlation of two functions' values over the same cells: the share of ``b``'s variance that the
    best affine map of ``a`` explains. Gain and offset are absorbed by the next layer, so only the shape counts;
    NaN where either is constant."""
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) ** 2 / norm) if norm > 0 else float("nan")


def r2_by_epoch(snapshots: dict, best_epoch: int, final: np.ndarray, points: np.ndarray) -> np.ndarray:
    """:func:`shared_variance` of each snapshot, epochs 0 (the session-I net) to ``best_epoch``, with ``final``,
    the best epoch's values at ``points``; ``snapshots`` as session II saves them (``snapshots.pt``)."""
    at = {epoch: state for epoch, state in zip(snapshots["epochs"], snapshots["snapshots"])}
    missing = [e for e in range(best_epoch + 1) if e not in at]
    if missing:
        raise ValueError(f"the snapshots lack epochs {missing[:5]} of 0..{best_epoch}")
    return np.array([shared_variance(values_at(inner_from_state(at[e]), points), final)
                     for e in range(best_epoch + 1)])


def mature_epoch(r2: np.ndarray, threshold: float) -> float:
    """The first epoch whose snapshot shares at least ``threshold`` of the final function's variance (the best
    epoch itself shares all of it); NaN for a constant final function."""
    reached = np.flatnonzero(np.nan_to_num(r2, nan=-1.0) >= threshold)
    return float(reached[0]) if len(reached) else float("nan")


def shares_by_epoch(records: list[dict], epochs: int | None = None) -> np.ndarray:
    """``(runs, epochs)``: each run's share at epochs 0..epochs-1 (default: to the latest best epoch), a run past
    its best epoch counting as there (1), over the runs with a shape (a constant final function has none)."""
    curves = [r["maturity_r2"] for r in records if np.isfinite(r["mature_epoch"])]
    epochs = max((len(c) for c in curves), default=0) if epochs is None else epochs
    return np.array([[c[min(e, len(c) - 1)] for e in range(epochs)] for c in curves]).reshape(len(curves), epochs)


def maturation_test(records: list[dict], horizon: int) -> dict:
    """Binomial test against 1/2 of the runs matured by epoch ``horizon``, among those whose best epoch came after
    it; a run that stopped improving by then (``n_short``) has matured by then whatever it learned, so it cannot
    tell. Constant final functions (dead nets) have no shape and are counted apart (``n_constant``). Runs grown
    from one session-I net count as one unit (:func:`multiarg.analysis.by_start_test`)."""
    shaped = [r for r in records if np.isfinite(r["mature_epoch"])]
    informative = [r for r in shaped if r["best_epoch"] > horizon]
    matured = [r["mature_epoch"] <= horizon for r in informative]
    test = by_start_test(binomial_test(sum(matured), len(informative)), [1 if m else -1 for m in matured],
                         [start_key(r) for r in informative])
    median = lambda key: float(np.median([r[key] for r in shaped])) if shaped else float("nan")  # noqa: E731
    return {**test, "n_short": len(shaped) - len(informative),
            "n_constant": len(records) - len(shaped), "median_mature_epoch": median("mature_epoch"),
            "median_best_epoch": median("best_epoch")}


def verdict(test: dict, horizon: int) -> str:
    if test["n"] == 0:
        return f"n/a (no run trained past epoch {horizon})"
    if test["p_two_sided"] >= 0.05:
        return "not significant (two-sided p >= 0.05)"
    most = "mature" if test["fraction"] > 0.5 else "not mature"
    return f"most {most} by epoch {horizon}, two-sided p < 0.05"


def maturation_rows(groups: dict[tuple, list[dict]], threshold: float, horizon: int) -> list[dict]:
    """One row per group of trained functions (``(kind, n_args, arch, dataset)``: records with ``maturity_r2``):
    the test, the median epoch of maturity and the median share of variance at each epoch up to the horizon."""
    rows = []
    for (kind, n_args, arch, dataset), group in sorted(groups.items()):
        group = [r for r in group if "maturity_r2" in r]
        if not group:
            continue
        test = maturation_test(group, horizon)
        shares = shares_by_epoch(group, horizon + 1)
        medians = np.median(shares, axis=0) if len(shares) else []
        rows.append({"kind": kind, "n_args": n_args, "arch": arch, "dataset": dataset, "by_epoch": horizon,
                     "k_mature": test["k"], "n": test["n"], "n_starts": test["n_starts"], "n_short": test["n_short"],
                     "n_constant": test["n_constant"],
                     "fraction_mature": f"{test['fraction']:.3f}", "ci95_low": f"{test['ci_low']:.3f}",
                     "ci95_high": f"{test['ci_high']:.3f}", "p_two_sided": f"{test['p_two_sided']:.3g}",
                     "median_mature_epoch": f"{test['median_mature_epoch']:g}",
                     "median_best_epoch": f"{test['median_best_epoch']:g}",
                     "median_r2_by_epoch": " ".join(f"{m:.2f}" for m in medians), "verdict": verdict(test, horizon)})
    return rows


def maturation_note(threshold: float, horizon: int) -> str:
    return (f"A run has matured by the first session-II epoch whose inner net shares at least {threshold:g} of the "
            "final (best-epoch) function's variance over that function's input region (squared correlation over "
            "the region's cells, each alike; epoch 0 is the session-I net). k_mature of n: runs matured by epoch "
            f"{horizon} (by_epoch), among the n whose best epoch came later (n_short: runs whose best epoch came by "
            "then, matured by then whatever they learned, left out; n_constant: constant final functions); exact "
            "binomial test against 1/2, Clopper-Pearson ci95. median_r2_by_epoch: the median share at epochs "
            f"0..{horizon} (a run past its best epoch counts as 1). The final function is the best epoch's "
            "(median_best_epoch): the longer a run trains, the further it can drift from its early snapshots, so "
            "the test is only as telling as the runs are long.")
