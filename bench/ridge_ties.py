"""How the committed accounts' curvature sign tests move when ridges are ties (``analysis.ridge_tolerance``).

A ridge is a nearly one-argument function: its minor principal curvature is a small share of its major one, so
|det A / tr A²| is small and the region's ragged edge may set the sign of that faint minor curvature. The paper lets
every fit that is not flat vote. For each account (the demo left out: its scale tests nothing), setting and kind
(learned nets and their session-I starts), this gives k/n negative and the two-sided binomial p with every such fit
voting and with the fits under each tolerance tied, from the fits tables alone. It measures nothing; the tables'
curvature_normalised has 3 decimals, so a fit within 0.0005 of a tolerance may fall on either side.

    python bench/ridge_ties.py    # bench/results/ridge_ties.json

tests/test_bench.py checks that the committed JSON is what this computes from the accounts.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from accounts import RESULTS, SIGN_VALUES, accounts, table_rows

from multiarg.analysis import is_ridge, sign_test
from multiarg.io import write_text

TOLERANCES = (0.0, 0.02, 0.05)
KINDS = ("learned", "start")


def vote(fit: dict, tolerance: float) -> int:
    """A fits-table row's curvature sign with ridges under ``tolerance`` tied; a row the account's own tolerance
    tied votes with the sign of its curvature where ``tolerance`` does not tie it."""
    normalised = float(fit["curvature_normalised"])
    if fit["sign"] == "flat" or is_ridge(normalised, tolerance):
        return 0
    return int(np.sign(normalised)) if fit["sign"] == "ridge" else SIGN_VALUES[fit["sign"]]


def counts(fits: list[dict], tolerance: float) -> dict:
    """The sign test of ``fits`` (rows of a fits table) with those under ``tolerance`` tied as ridges."""
    signs = [vote(r, tolerance) for r in fits]
    test = sign_test(signs)
    ridges = sum(r["sign"] != "flat" and s == 0 for r, s in zip(fits, signs))
    return {"tolerance": tolerance, "k": test["k"], "n": test["n"], "n_ridge": ridges,
            "p_two_sided": float(f"{test['p_two_sided']:.4g}")}


def rows(results: Path = RESULTS, tolerances=TOLERANCES) -> list[dict]:
    """One row per account, setting and kind: the counts at each tolerance, and whether p crosses 0.05 among them."""
    out = []
    for account in accounts(results):
        if account.name.startswith("demo"):
            continue
        fits = table_rows(account, "fits")
        for dataset, arch, kind in sorted({(r["dataset"], r["arch"], r["kind"]) for r in fits if r["kind"] in KINDS}):
            group = [r for r in fits if (r["dataset"], r["arch"], r["kind"]) == (dataset, arch, kind)]
            tests = [counts(group, t) for t in tolerances]
            out.append({"account": account.name, "dataset": dataset, "arch": arch, "kind": kind, "tests": tests,
                        "crosses_0.05": len({t["p_two_sided"] < 0.05 for t in tests}) > 1})
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
    write_text(json.dumps(record, indent=2) + "\n", args.out)
    for r in record["rows"]:
        cells = "  ".join(f"{t['k']}/{t['n']} p={t['p_two_sided']:.3g}" for t in r["tests"])
        print(f"{r['account']:34} {r['dataset']:8} {r['arch']:4} {r['kind']:8} {cells}"
              + ("  <- crosses 0.05" if r["crosses_0.05"] else ""))
    return record


if __name__ == "__main__":
    main()
