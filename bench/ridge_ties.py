"""How the committed accounts' curvature sign tests move when ridges are ties (``analysis.ridge_tolerance``).

A ridge is a nearly one-argument function: its minor principal curvature is a small share of its major one, so
|det A / tr A²| is small and the region's ragged edge may set the sign of that faint minor curvature. The paper lets
every fit that is not flat vote. For each account (the demo left out: its scale tests nothing) and setting, this
gives, with every such fit voting and with the fits under each tolerance tied, the sign tests of the learned nets and
of their session-I starts (k/n negative, two-sided binomial p) and McNemar's test of the sign changes between them
(to_negative, to_positive, two-sided p), as the curvature tables test them, from the fits tables alone. It measures
nothing; the tables' curvature_normalised has 3 decimals, so a fit within 0.0005 of a tolerance may fall on either
side.

    python bench/ridge_ties.py    # bench/results/ridge_ties.json

tests/test_bench.py checks that the committed JSON is what this computes from the accounts.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from accounts import RESULTS, fit_sign, setting_fits

from multiarg.analysis import sign_changes, sign_test
from multiarg.io import write_record

TOLERANCES = (0.0, 0.02, 0.05)
KINDS = ("learned", "start")


def _p(value: float) -> float | None:
    """A p-value to 4 significant digits; None where there was nothing to test (no sign changed), which JSON, unlike
    NaN, can hold and compare."""
    return float(f"{value:.4g}") if math.isfinite(value) else None


def _below(p: float | None, alpha: float = 0.05) -> bool:
    return p is not None and p < alpha


def counts(fits: list[dict], tolerance: float) -> dict:
    """The sign test of ``fits`` (rows of a fits table) with those under ``tolerance`` tied as ridges."""
    signs = [fit_sign(r, tolerance) for r in fits]
    test = sign_test(signs)
    ridges = sum(r["sign"] != "flat" and s == 0 for r, s in zip(fits, signs))
    return {"tolerance": tolerance, "k": test["k"], "n": test["n"], "n_ridge": ridges,
            "p_two_sided": _p(test["p_two_sided"])}


def changes(pairs: list[tuple[dict, dict]], tolerance: float) -> dict:
    """McNemar's test of the sign changes of (start, learned) pairs of fits with ridges under ``tolerance`` tied."""
    test = sign_changes(*zip(*[(fit_sign(a, tolerance), fit_sign(b, tolerance)) for a, b in pairs]))
    return {"tolerance": tolerance, "to_negative": test["to_negative"], "to_positive": test["to_positive"],
            "p_two_sided": _p(test["p_two_sided"])}


def rows(results: Path = RESULTS, tolerances=TOLERANCES) -> list[dict]:
    """One row per account, setting and test (``kind``: learned, start, or change: McNemar's of learned against
    start): its results at each tolerance, and whether p crosses 0.05 among them."""
    out = []
    for account, dataset, arch, fits in setting_fits(results):
        by_kind = {kind: {r["seed"]: r for r in fits if r["kind"] == kind} for kind in KINDS}
        found = {kind: [counts(list(group.values()), t) for t in tolerances]
                 for kind, group in by_kind.items() if group}
        if pairs := [(start, by_kind["learned"][seed]) for seed, start in by_kind["start"].items()
                     if seed in by_kind["learned"]]:
            found["change"] = [changes(pairs, t) for t in tolerances]
        out += [{"account": account.name, "dataset": dataset, "arch": arch, "kind": kind, "tests": tests,
                 "crosses_0.05": len({_below(t["p_two_sided"]) for t in tests}) > 1} for kind, tests in found.items()]
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="the folder of run accounts")
    p.add_argument("--tolerances", default=",".join(f"{t:g}" for t in TOLERANCES),
                   help="comma-separated ridge tolerances, 0 first (every fit not flat votes)")
    p.add_argument("--out", type=Path, default=RESULTS / "ridge_ties.json")
    args = p.parse_args(argv)
    tolerances = [float(t) for t in args.tolerances.split(",")]
    if not all(0 <= t < 0.5 for t in tolerances):
        raise SystemExit(f"ridge tolerances lie in [0, 0.5), got {args.tolerances}")
    given = sys.argv[1:] if argv is None else argv
    record = {"command": " ".join(["python", "bench/ridge_ties.py", *given]), "rows": rows(args.results, tolerances)}
    if not record["rows"]:
        raise SystemExit(f"no run account under {args.results} has a fits table")
    write_record(record, args.out)
    for r in record["rows"]:
        cells = "  ".join((f"{t['k']}/{t['n']}" if "k" in t else f"-{t['to_negative']}+{t['to_positive']}")
                          + (f" p={t['p_two_sided']:.3g}" if t["p_two_sided"] is not None else " p=n/a")
                          for t in r["tests"])
        print(f"{r['account']:34} {r['dataset']:8} {r['arch']:4} {r['kind']:8} {cells}"
              + ("  <- crosses 0.05" if r["crosses_0.05"] else ""))
    return record


if __name__ == "__main__":
    main()
