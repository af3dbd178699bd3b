"""The analyses of Sections 4.3-4.4 applied to trained networks: every inner net is evaluated on the
cells of its measured input histogram, restricted to the region holding 99% of the inputs, and
summarised by its best-fit quadratic (2-arg) and its power spectrum (2- and 3-arg).

Populations (``kind``): ``learned`` (session-II inner nets of argN), ``start`` (each learned net's own session-I
net, over the learned net's inputs, so that the two pair up), ``xavier-init`` (Xavier-initialised inner nets before
any training, each analysed in one setting over the inputs of a learned network there) and ``xavier-trained`` (the
arg2-xavier control after session II, over its own inputs).
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from .activations import load_inner, values_at
from .analysis import (SIGN_NAMES, binomial_test, curvature_tie, fit_quadratic, hermite_bessel_basis, null_band,
                       power_by_order, projections, sign_changes, sign_test, solid_harmonic_basis, start_key,
                       start_means, tie_counts)
from .inputs import centers, mass_region
from .io import load_torch, save_torch
from .maturation import mature_epoch, maturation_note, maturation_rows, r2_by_epoch
from .paths import parse_run
from .tables import difference_cells, paired_difference, welch_difference, write_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisConfig:
    mass: float = 0.99            # input mass of the analysed region
    fit_weighting: str = "uniform"  # quadratic fit: every region cell alike, or weighted by input density
    basis_scale: float = 1.0      # length scale of the Hermite-Bessel / solid-harmonic basis (x the inputs' RMS
    #                               spread under basis_frame 'inputs')
    basis_frame: str = "inputs"   # basis centred at the inputs' mean and scaled to their spread, or fixed at the origin
    spectrum_offset: str = "remove"  # project f minus its input-weighted mean, or f as it is
    l_max: int = 6
    flat_tolerance: float = 1e-5  # a fit whose quadratic part is this small next to max |f| is flat: sign 0, a tie
    ridge_tolerance: float = 0.0  # a fit with |det A / tr A^2| under this is a ridge, also a tie (0: none)
    maturity_r2: float = 0.9      # a run has matured once a snapshot shares this much of the final function's variance
    maturity_epochs: int = 5      # ... by this epoch (the paper's "within 1-5 epochs")

    def __post_init__(self):
        if not self.flat_tolerance >= 0:
            raise ValueError(f"flat_tolerance must be >= 0, got {self.flat_tolerance}")
        if not 0 <= self.ridge_tolerance < 0.5:  # |det A / tr A^2| <= 1/2: at 1/2 every fit would tie
            raise ValueError(f"ridge_tolerance must be in [0, 0.5), got {self.ridge_tolerance}")
        if not 0 < self.maturity_r2 <= 1 or self.maturity_epochs < 0:
            raise ValueError(f"need 0 < maturity_r2 <= 1 and maturity_epochs >= 0, got {self.maturity_r2}, "
                             f"{self.maturity_epochs}")
        for key, allowed in (("fit_weighting", ("uniform", "density")), ("basis_frame", ("inputs", "origin")),
                             ("spectrum_offset", ("remove", "keep"))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")


def region(hist: dict, mass: float) -> dict:
    """Cell centres, the input density p(x) on them (zero outside the ``mass`` region) and the cell volume."""
    n, bins, extent = hist["n_args"], hist["bins"], hist["extent"]
    axis = centers(bins, extent).numpy()
    points = np.stack(np.meshgrid(*[axis] * n, indexing="ij"), axis=-1)
    volume = (2 * extent / bins) ** n
    mask = mass_region(hist["counts"], hist["total"], mass).numpy()
    density = np.where(mask, hist["counts"].numpy() / hist["total"] / volume, 0.0)
    return {"axis": axis, "points": points, "mask": mask, "density": density, "volume": volume}


def basis_frame(reg: dict, cfg: AnalysisConfig) -> tuple[np.ndarray, float]:
    """Centre and length scale of the basis. Projecting p f (the paper's formula) separates the orders of f
    cleanly only where the basis' Gaussian envelope matches p, so under ``inputs`` the basis sits at the
    inputs' mean with the RMS of their per-axis spread (times ``basis_scale``), both over the analysed region."""
    n = reg["points"].shape[-1]
    if cfg.basis_frame == "origin":
        return np.zeros(n), cfg.basis_scale
    p = reg["density"] / reg["density"].sum()
    centre = np.tensordot(p, reg["points"], axes=p.ndim)
    spread = np.sqrt(np.sum(p * ((reg["points"] - centre) ** 2).sum(-1)) / n)
    return centre, cfg.basis_scale * float(spread)


def analyse_function(inner, hist: dict, cfg: AnalysisConfig) -> dict:
    """Quadratic fit (2-arg) and power spectrum (2-/3-arg) of one inner net over one input histogram."""
    reg = region(hist, cfg.mass)
    f = values_at(inner, reg["points"])
    if not np.isfinite(f[reg["mask"]]).all():
        raise ValueError("the inner net gives non-finite values on its input region")
    n = hist["n_args"]
    centre, scale = basis_frame(reg, cfg)
    basis_fn = {2: hermite_bessel_basis, 3: solid_harmonic_basis}[n]
    basis, labels = basis_fn(reg["points"] - centre, cfg.l_max, scale)
    # Constant offsets and overall gain are absorbed by the next layer's bias and weights, so the shape of a
    # nonlinearity is its share of power at each order l >= 1; removing the offset keeps it from leaking
    # into l >= 1 where p is not the basis' Gaussian.
    offset = np.sum(reg["density"] * f) / reg["density"].sum() if cfg.spectrum_offset == "remove" else 0.0
    coeffs = projections(f - offset, reg["density"], basis, reg["volume"])
    power = power_by_order(coeffs, labels)
    spectrum = np.array([power[l] for l in range(cfg.l_max + 1)])
    # a function constant up to rounding (a dead net) has no shape: its shares would be those of the rounding noise
    values, shape = f[reg["mask"]], spectrum[1:].sum()
    constant = bool(np.ptp(values) <= cfg.flat_tolerance * np.abs(values).max())
    fraction = np.full_like(spectrum, np.nan) if constant else spectrum / shape if shape > 0 else spectrum * 0
    out = {"n_args": n, "spectrum": spectrum, "constant": constant, "spectrum_fraction": fraction,
           "basis_centre": centre, "basis_scale": scale,
           "region_cells": int(reg["mask"].sum()), "values": f.astype(np.float32), "mask": reg["mask"],
           "axis": reg["axis"]}
    if n == 2:
        # l = 2 holds the saddles x1 x2 and x1^2 - x2^2 (|m| = 2) and the isotropic bowl |x|^2 (m = 0):
        # only the saddles are the paper's quadrupole
        saddle = sum(c**2 for (l, m), c in zip(labels, coeffs) if l == 2 and abs(m) == 2)
        # both weightings, so the curvature tests can show whether the sign depends on the choice
        fits = {w: fit_quadratic(reg["points"][reg["mask"]], values,
                                 reg["density"][reg["mask"]] if w == "density" else None, cfg.flat_tolerance,
                                 cfg.ridge_tolerance)
                for w in ("uniform", "density")}
        fit, other = fits[cfg.fit_weighting], fits["density" if cfg.fit_weighting == "uniform" else "uniform"]
        out.update(coef=fit["coef"], r2=fit["r2"], curvature=fit["curvature"], curvature_sign=fit["sign"],
                   curvature_tie=fit["tie"], quadratic_size=fit["quadratic_size"],
                   curvature_normalised=fit["normalised"],
                   curvature_other_weighting=other["curvature"], curvature_sign_other_weighting=other["sign"],
                   saddle_share_l2=float(saddle / power[2]) if power[2] > 0 else float("nan"))
    return out


def load_records(path: str) -> dict:
    """``nonlinearities.pt`` with its arrays back as numpy."""
    data = load_torch(path)
    data["records"] = [{k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in r.items()}
                       for r in data["records"]]
    return data


def save_records(records: list[dict], scale: str, out: str | os.PathLike) -> None:
    """The records as :func:`load_records` reads them back: numpy arrays stored as tensors, which weights_only
    loading admits (numpy arrays it does not)."""
    stored = [{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in r.items()} for r in records]
    save_torch({"records": stored, "scale": scale}, out)


def _run_key(run: dict) -> tuple:
    """What names one network: its ``(dataset, arch, activation, seed)``."""
    return run["dataset"], run["arch"], run["activation"], run["seed"]


def _by_run(paths: list[str]) -> dict[tuple, str]:
    return {_run_key(parse_run(p)): p for p in paths}


def analyse_runs(models: list[str], inputs: list[str], inits: list[str], cfg: AnalysisConfig,
                 snapshots: list[str] = (), starts: list[str] = ()) -> list[dict]:
    """Analyse every session-II model (with its ``inputs.pt``, and how it matured where its ``snapshots.pt`` is
    given), every Xavier init record and every learned model's session-I start among ``starts``.

    A model of activation ``argN`` is ``learned``, of ``argN-xavier`` ``xavier-trained``; each init record of
    ``argN-xavier`` is ``xavier-init`` in one dataset x architecture (:func:`xavier_assignment`); the session-I
    record of ``argN`` and a learned model's seed is that model's ``start``, analysed over the model's inputs.
    """
    from .sessions import load_model

    hists, snaps = _by_run(inputs), _by_run(snapshots)
    begun = {}
    for path in starts:
        start = load_torch(path)
        key = (f"arg{int(start['n_args'])}", start["seed"])
        if key in begun:
            raise ValueError(f"two session-I starts for {key[0]} seed {key[1]}, the second {path}")
        begun[key] = start
    records = []
    for path in models:
        info = parse_run(path)
        key = _run_key(info)
        kind = "xavier-trained" if info["activation"].endswith("-xavier") else "learned"
        model, record = load_model(path)
        hist = load_torch(hists[key])
        result = analyse_function(model.inner, hist, cfg)
        if key in snaps:
            points = region(hist, cfg.mass)["points"][result["mask"]]
            r2 = r2_by_epoch(load_torch(snaps[key]), record["best_epoch"], values_at(model.inner, points), points)
            # a constant function (a dead net) has no shape to take: its shares would be rounding noise's
            result.update(best_epoch=record["best_epoch"], maturity_r2=r2,
                          mature_epoch=float("nan") if result["constant"] else mature_epoch(r2, cfg.maturity_r2))
        records.append({**info, "kind": kind, "data_note": record["data_note"], **result})
        if kind == "learned" and (start := begun.get((info["activation"], info["seed"]))):
            records.append({**info, "session": 0, "kind": "start", "data_note": record["data_note"],
                            **analyse_function(load_inner(start), hist, cfg)})
    for (dataset, arch, learned, seed), init in xavier_assignment([load_torch(p) for p in inits], list(hists)):
        result = analyse_function(load_inner(init), load_torch(hists[dataset, arch, learned, seed]), cfg)
        records.append({"dataset": dataset, "arch": arch, "activation": f"{learned}-xavier", "seed": init["seed"],
                        "session": 0, "kind": "xavier-init", "data_note": "", **result})
    log.info("analysed %d functions", len(records))
    return records


def xavier_assignment(inits: list[dict], runs: list[tuple]) -> list[tuple[tuple, dict]]:
    """Which untrained Xavier init (a session-I record) is analysed over which learned run's inputs, given the
    ``(dataset, arch, activation, seed)`` of every run with an input histogram: ``[(run, init)]``.

    Each init is analysed once, so a pooled group never counts one network twice (the paper's 24 Xavier
    functions are 24 networks). The inits of argN, in seed order, are dealt out in equal blocks to the settings
    (dataset x arch, sorted) that have argN runs: setting k gets seeds kN ... kN + N - 1, the j-th of them
    over the inputs of the setting's j-th learned seed. With one setting, init seed j goes with learned seed j.
    """
    pairs = []
    for n_args in sorted({int(init["n_args"]) for init in inits}):
        learned = f"arg{n_args}"
        found = sorted((init for init in inits if init["n_args"] == n_args), key=lambda init: init["seed"])
        seeds = defaultdict(list)
        for dataset, arch, activation, seed in sorted(runs):
            if activation == learned:
                seeds[dataset, arch].append(seed)
        if not seeds or len(found) % len(seeds):
            raise ValueError(f"{len(found)} untrained {learned}-xavier inits cannot be shared out equally among "
                             f"the {len(seeds)} settings with {learned} input histograms")
        per = len(found) // len(seeds)
        for k, (setting, learned_seeds) in enumerate(sorted(seeds.items())):
            if per > len(learned_seeds):
                raise ValueError(f"{setting}: {per} untrained {learned}-xavier inits to analyse but only "
                                 f"{len(learned_seeds)} {learned} input histograms")
            pairs += [((*setting, learned, s), init) for s, init in zip(learned_seeds, found[k * per:(k + 1) * per])]
    return pairs


def _groups(records: list[dict]) -> dict[tuple, list[dict]]:
    """Records by (kind, arch, dataset), plus pooled datasets ('all') and pooled everything. A pooled group holds
    the nets of one seed from every setting, grown from one session-I net: its tests take them as one unit."""
    groups = defaultdict(list)
    for r in records:
        for arch in (r["arch"], "all"):
            for dataset in (r["dataset"], "all"):
                if arch == "all" and dataset != "all":
                    continue
                groups[r["kind"], r["n_args"], arch, dataset].append(r)
    return groups


def _verdict(test: dict) -> str:
    if test["n"] == 0:
        return "n/a (every fit tied)"
    if test["p_two_sided"] >= 0.05:
        return "not significant (two-sided p >= 0.05)"
    side = "negative (XOR-like)" if test["fraction"] > 0.5 else "positive (elliptic)"
    return f"mostly {side}, two-sided p < 0.05"


def fits_rows(records: list[dict]) -> list[dict]:
    rows = []
    order = lambda r: (r["kind"], r["arch"], r["dataset"], r["seed"])  # noqa: E731
    for r in sorted((r for r in records if r["n_args"] == 2), key=order):
        rows.append({"kind": r["kind"], "dataset": r["dataset"], "arch": r["arch"], "seed": r["seed"],
                     **{f"c{i + 1}": f"{c:.4g}" for i, c in enumerate(r["coef"])}, "r2": f"{r['r2']:.4f}",
                     "curvature": f"{r['curvature']:.4g}", "curvature_normalised": f"{r['curvature_normalised']:.3f}",
                     "sign": curvature_tie(r) or SIGN_NAMES[r["curvature_sign"]],
                     "quadratic_size": f"{r['quadratic_size']:.3g}",
                     "region_cells": r["region_cells"]})
    return rows


def _quadratic_versus_xavier(group: list[dict], xavier: list[dict] | None) -> dict:
    """Fig. 7e and 5b: Xavier-initialised nets are "far from the regular quadratic patterns" of learned ones and
    "evolve to display" them, as a test of the quadratic fit's R² (this group minus xavier-init), flat fits (planes,
    fitted exactly) left out, each start's functions averaged. Where every net of the group is one of the
    xavier-init nets trained (xavier-trained against its own inits, as in a run of one setting) the test is a paired
    t over those nets; else (learned nets, or Xavier nets trained from inits analysed in another setting) Welch's."""
    curved = lambda rs: [r for r in rs if curvature_tie(r) != "flat"]  # noqa: E731
    fitted = curved(group)
    mine, r2 = _means_by_start(fitted, "r2"), [r["r2"] for r in fitted]
    inits = _means_by_start(curved(xavier or []), "r2")
    paired = bool(mine) and mine.keys() <= inits.keys()
    test = (None if not xavier else paired_difference(list(mine.values()), [inits[k] for k in mine]) if paired
            else welch_difference(list(mine.values()), list(inits.values())))
    name = "paired t" if paired else "Welch"
    too_few = "n/a (fewer than two pairs of nets with curved fits)" if paired else "n/a (fewer than two curved fits)"
    cells = (("", "", "") if not xavier else ("", "", too_few) if test is None
             else difference_cells(test, "more quadratic than xavier-init", "less quadratic than xavier-init",
                                   digits=3, name=name))
    return {"r2_mean": f"{np.mean(r2):.3f}" if r2 else "", "r2_vs_xavier_init_test": name if xavier else "",
            **dict(zip(("r2_vs_xavier_init_ci95", "r2_vs_xavier_init_p", "r2_verdict"), cells))}


def _means_by_start(records: list[dict], key: str, l: int | None = None) -> dict[tuple, float]:
    """``record[key]`` (its entry ``l`` where given) averaged over the records of each session-I start, by start
    (:func:`start_key`), in the order the starts first come."""
    starts = [start_key(r) for r in records]
    values = [r[key] if l is None else r[key][l] for r in records]
    return dict(zip(dict.fromkeys(starts), start_means(values, starts)))


def _unit_means(records: list[dict], key: str, l: int | None = None) -> list[float]:
    """:func:`_means_by_start` as a list: one number per independent unit."""
    return list(_means_by_start(records, key, l).values())


def _with_starts(group: list[dict], starts: list[dict] | None) -> list[tuple[dict, dict]]:
    """(start, learned) for every learned function of ``group`` whose own session-I start is among ``starts``."""
    begun = {_run_key(r): r for r in starts or []}
    return [(begun[_run_key(r)], r) for r in group if _run_key(r) in begun] if begun else []


def _change_verdict(test: dict) -> str:
    if test["n"] == 0:
        return "n/a (no sign changed)"
    if test["p_two_sided"] >= 0.05:
        return "not significant (McNemar p >= 0.05)"
    return f"turned {'negative' if test['fraction'] > 0.5 else 'positive'}, McNemar p < 0.05"


def _curvature_versus_start(group: list[dict], starts: list[dict] | None) -> dict:
    """Whether session II changed the curvature its nets started with: each learned function paired with its own
    session-I start over the same region, McNemar's test of the sign changes and a paired t of the normalised
    curvature (learned minus start), a start's pairs taken together."""
    keys = ("k_negative_at_start", "to_negative", "to_positive", "change_ci95", "change_p", "change_verdict",
            "curvature_change_ci95", "curvature_change_p", "curvature_change_verdict")
    pairs = _with_starts(group, starts)
    if not pairs:
        return dict.fromkeys(keys, "")
    began, learned = (list(side) for side in zip(*pairs))
    test = sign_changes([a["curvature_sign"] for a in began], [b["curvature_sign"] for b in learned],
                        [start_key(b) for b in learned])
    shift = paired_difference(_unit_means(learned, "curvature_normalised"), _unit_means(began, "curvature_normalised"))
    interval = f"[{test['ci_low']:.3f}, {test['ci_high']:.3f}]" if test["n"] else ""
    return dict(zip(keys, (sum(a["curvature_sign"] < 0 for a, _ in pairs), test["to_negative"], test["to_positive"],
                           interval, f"{test['p_two_sided']:.3g}" if test["n"] else "", _change_verdict(test),
                           *difference_cells(shift, "more elliptic than at the start",
                                             "more XOR-like than at the start", digits=3, name="paired t"))))


def _cnn_versus_mlp(group: list[dict]) -> dict:
    """Where a pooled group holds a CNN's and an MLP's function grown from one session-I net on one dataset, which
    is the negative one when they differ: McNemar's test of the signs so paired, a start's pairs taken together.
    The architectures share their starts, so this pairs what a test of two independent counts would not."""
    keys = ("cnn_mlp_pairs", "cnn_only_negative", "mlp_only_negative", "cnn_vs_mlp_ci95", "cnn_vs_mlp_p",
            "cnn_vs_mlp_verdict")
    by = {(r["arch"], r["dataset"], start_key(r)): r for r in group}
    pairs = [(by["mlp", dataset, start], r) for (arch, dataset, start), r in by.items()
             if arch == "cnn" and ("mlp", dataset, start) in by]
    if not pairs:
        return dict.fromkeys(keys, "")
    test = sign_changes([m["curvature_sign"] for m, _ in pairs], [c["curvature_sign"] for _, c in pairs],
                        [start_key(c) for _, c in pairs])
    verdict = ("n/a (no pair differs in sign)" if test["n"] == 0
               else "not significant (McNemar p >= 0.05)" if test["p_two_sided"] >= 0.05
               else f"{'CNN' if test['fraction'] > 0.5 else 'MLP'} more often negative, McNemar p < 0.05")
    cells = (f"[{test['ci_low']:.3f}, {test['ci_high']:.3f}]", f"{test['p_two_sided']:.3g}") if test["n"] else ("", "")
    return dict(zip(keys, (len(pairs), test["to_negative"], test["to_positive"], *cells, verdict)))


def curvature_rows(records: list[dict]) -> list[dict]:
    """Binomial tests of the number of negative curvatures against 1/2, per group; flat fits and ridges are ties,
    counted apart (``n_flat``, ``n_ridge``) and left out of n. Beside them, how close to a quadratic the group's
    functions are against the Xavier-initialised ones of the same setting, and for learned functions how far session
    II moved them from their session-I starts."""
    rows = []
    groups = _groups(records)
    for (kind, n_args, arch, dataset), group in sorted(groups.items()):
        if n_args != 2:
            continue
        xavier = groups.get(("xavier-init", n_args, arch, dataset)) if kind != "xavier-init" else None
        starts = groups.get(("start", n_args, arch, dataset)) if kind == "learned" else None
        units = [start_key(r) for r in group]
        test = sign_test([r["curvature_sign"] for r in group], units)
        positive = sign_test([-r["curvature_sign"] for r in group], units)
        lo, hi = null_band(test["n_starts"])
        rows.append({"kind": kind, "arch": arch, "dataset": dataset, "k_negative": test["k"], "n": test["n"],
                     "n_starts": test["n_starts"], **tie_counts(group),
                     "k_negative_other_weighting": sum(r["curvature_sign_other_weighting"] < 0 for r in group),
                     "fraction_negative": f"{test['fraction']:.3f}",
                     "ci95_low": f"{test['ci_low']:.3f}", "ci95_high": f"{test['ci_high']:.3f}",
                     "p_one_sided_more_negative": f"{test['p_one_sided']:.3g}",
                     "p_one_sided_more_positive": f"{positive['p_one_sided']:.3g}",
                     "p_two_sided": f"{test['p_two_sided']:.3g}", "null95_low": f"{lo:.3f}", "null95_high": f"{hi:.3f}",
                     "median_r2": f"{np.median([r['r2'] for r in group]):.3f}", "verdict": _verdict(test),
                     **_quadratic_versus_xavier(group, xavier), **_curvature_versus_start(group, starts),
                     **_cnn_versus_mlp(group)})
    return rows


def _versus_xavier(group: list[dict], xavier: list[dict] | None, l: int) -> dict:
    """The paper's claims, learned functions hold more of their power at l = 2 and less at l = 1 than
    Xavier-initialised ones, as Welch tests of the share at l (learned minus xavier-init), each start's functions
    averaged first."""
    cells = ("", "", "") if not xavier or l not in (1, 2) else difference_cells(
        welch_difference(_unit_means(group, "spectrum_fraction", l), _unit_means(xavier, "spectrum_fraction", l)),
        f"learned more at l = {l}", f"learned less at l = {l}", digits=3)
    return dict(zip(("vs_xavier_init_ci95", "vs_xavier_init_p", "verdict"), cells))


def _spectrum_versus_start(group: list[dict], starts: list[dict] | None, l: int) -> dict:
    """Whether session II moved the share of power at l from where each function's session-I start had it: a
    paired t of the share (learned minus start) over the functions both of which have a shape, a start's pairs
    averaged first."""
    pairs = _with_starts(group, starts) if l in (1, 2) else []
    shares = [_unit_means(list(side), "spectrum_fraction", l) for side in zip(*pairs)]  # [starts, learned]
    cells = ("", "", "") if not pairs else difference_cells(
        paired_difference(shares[1], shares[0]), f"more at l = {l} than at the start",
        f"less at l = {l} than at the start", digits=3, name="paired t")
    return dict(zip(("vs_start_ci95", "vs_start_p", "vs_start_verdict"), cells))


def shaped(records: list[dict]) -> list[dict]:
    """The functions that are not constant over their region: those a spectrum's shares describe."""
    return [r for r in records if not r["constant"]]


def spectra_rows(records: list[dict]) -> list[dict]:
    """Shares of power per order l, mean and SD per group, of the functions that are not constant (``n``; the
    constant ones counted apart, ``n_constant``), with the learned-vs-Xavier tests at l = 1 and 2."""
    rows = []
    every = _groups(records)
    groups = {key: shaped(group) for key, group in every.items()}
    for (kind, n_args, arch, dataset), group in sorted(groups.items()):
        if not group:
            continue
        xavier = groups.get(("xavier-init", n_args, arch, dataset)) if kind == "learned" else None
        starts = groups.get(("start", n_args, arch, dataset)) if kind == "learned" else None
        frac = np.stack([r["spectrum_fraction"] for r in group])
        raw = np.stack([r["spectrum"] for r in group])
        sd = frac.std(0, ddof=1) if len(group) > 1 else np.zeros(frac.shape[1])
        saddle = f"{np.nanmean([r['saddle_share_l2'] for r in group]):.3f}" if n_args == 2 else ""
        for l in range(frac.shape[1]):
            rows.append({"n_args": n_args, "kind": kind, "arch": arch, "dataset": dataset, "l": l, "n": len(group),
                         "n_constant": len(every[kind, n_args, arch, dataset]) - len(group),
                         "power_fraction_mean": f"{frac[:, l].mean():.4f}", "power_fraction_sd": f"{sd[l]:.4f}",
                         "power_mean": f"{raw[:, l].mean():.4g}",
                         "peak_l_share": f"{np.mean(frac[:, 1:].argmax(1) + 1 == l):.3f}" if l else "",
                         "saddle_share_mean": saddle if l == 2 else "", **_versus_xavier(group, xavier, l),
                         **_spectrum_versus_start(group, starts, l)})
    return rows


def paper_check_note() -> str:
    """Why the paper's '78% of 48 trials, p = 0.007' cannot hold as stated, computed here."""
    t37, t38 = binomial_test(37, 48), binomial_test(38, 48)
    t19, t17 = binomial_test(19, 24), binomial_test(17, 24)
    return ("Paper check: the paper reports 78% negative curvatures of 48 CNN trials with p = 0.007. "
            f"37/48 (77%) gives one-sided p = {t37['p_one_sided']:.2g}, two-sided p = {t37['p_two_sided']:.2g}; "
            f"38/48 (79%) gives two-sided p = {t38['p_two_sided']:.2g}, so 78% and p = 0.007 cannot both hold "
            "for 48 trials. "
            f"19/24 gives two-sided p = {t19['p_two_sided']:.2g} and 17/24 two-sided p = {t17['p_two_sided']:.2g} "
            "(the paper's MLP p = 0.06), so its p-values look like two-sided tests on 24 trials.")


def write_outputs(records: list[dict], out: str, tables: dict[str, str], scale: str, cfg: AnalysisConfig) -> None:
    """The records (for the figures) and the fits, curvature-test and spectra tables, and the maturation table
    where ``tables`` names one."""
    save_records(records, scale, out)
    ridges = (f"{cfg.ridge_tolerance:g}" if cfg.ridge_tolerance
              else "0: every fit not flat votes, however nearly one-argument")
    p_note = ("p_one_sided_more_negative: exact binomial P[X >= k] under p = 1/2 (alternative: more negative); "
              "p_one_sided_more_positive: P[X <= k]; p_two_sided: both tails; ci95: Clopper-Pearson; "
              "null95: central 95% band of k/n under the null. 'all' pools datasets / architectures; a seed's nets "
              "there grew from one session-I net, so every test takes a start as one unit (n_starts: those with a "
              "fit not tied): an exact sign-flip test of each start's summed signs, which is the binomial test where "
              "each start has one function, the Clopper-Pearson interval and null band at n_starts trials "
              "(conservative), and the t tests on each start's mean. "
              "k_negative_other_weighting: k with the quadratic fitted under the other weighting "
              "(density-weighted if the fits are uniform, and vice versa). n_flat: fits whose quadratic part is at "
              f"most {cfg.flat_tolerance:g} of max |f| over the region (constant or affine functions, whose "
              "curvature sign is rounding noise): ties, left out of n. n_ridge: fits whose |det A / tr A²| is under "
              f"ridge_tolerance ({ridges}): ridges, also ties. r2_mean: the quadratic fits' mean R² (flat "
              "fits left out); r2_vs_xavier_init: this group's minus the xavier-init group's of the same setting, "
              "95% interval, p and verdict, by r2_vs_xavier_init_test: a paired t where the group's nets are "
              "xavier-init nets trained (the xavier-trained rows of a run of one setting), else Welch's. Learned "
              "rows against the start rows (each learned net's own session-I net, fitted over the learned net's "
              "region): k_negative_at_start, to_negative and "
              "to_positive (pairs whose sign changed each way between negative and positive; a flat fit or a ridge "
              "on either side is a tie), change: McNemar's exact test of to_negative against 1/2 among the changes "
              "(Clopper-Pearson ci95 of their share turned negative), curvature_change: learned minus start "
              "normalised curvature, paired t. A learned group no more negative than its starts did not learn "
              "its sign in session II. cnn_vs_mlp (pooled rows with both): each CNN function paired with the MLP "
              "function of its dataset and seed (cnn_mlp_pairs), grown from one start; McNemar's test of the pairs "
              "whose signs differ (cnn_only_negative against mlp_only_negative), with the Clopper-Pearson interval "
              "of the share where the CNN's is the negative one.")
    write_table(fits_rows(records), tables["fits"], f"Quadratic fits of 2-arg nonlinearities ({scale})")
    write_table(curvature_rows(records), tables["curvature"], f"Curvature sign tests ({scale})",
                notes=[p_note, paper_check_note()])
    write_table(spectra_rows(records), tables["spectra"], f"Power spectra by order l ({scale})",
                notes=["power_fraction: P_l / sum_{l>=1} P_l per function, mean and SD over functions; "
                       "peak_l_share: fraction of functions whose largest l >= 1 is this l; saddle_share_mean (2-arg, "
                       "l = 2): the share of P_2 in the saddles x1 x2 and x1^2 - x2^2 (|m| = 2) rather than the "
                       "isotropic bowl |x|^2 (m = 0), mean over functions: only the saddles are a quadrupole. "
                       "vs_xavier_init (learned rows, l = 1 and 2): learned minus xavier-init power_fraction, "
                       "Welch's 95% interval and p over the functions; vs_start: learned minus its own session-I "
                       "start's power_fraction (the start rows), paired t over the functions. n: functions with a "
                       f"shape; n_constant: functions whose values vary by at most {cfg.flat_tolerance:g} of max |f| "
                       "over the region (a dead net), left out: their shares would be those of rounding noise.",
                       (f"Basis: centred on the inputs, scale {cfg.basis_scale} x their RMS spread"
                        if cfg.basis_frame == "inputs" else f"Basis: at the origin, scale {cfg.basis_scale}")
                       + ("; f projected minus its input-weighted mean." if cfg.spectrum_offset == "remove"
                          else "; f projected as it is.")])
    if "maturation" in tables:
        write_table(maturation_rows(_groups(records), cfg.maturity_r2, cfg.maturity_epochs), tables["maturation"],
                    f"How soon the nonlinearities take their final shape ({scale})",
                    notes=[maturation_note(cfg.maturity_r2, cfg.maturity_epochs)])
