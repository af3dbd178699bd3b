"""The committed accounts' test of Fig. 5b's claim, Xavier-initialised nets closer to a quadratic after session II,
redone as the workflow now does it: paired.

A run of one setting analyses each Xavier net twice, untrained (``xavier-init``) and after session II
(``xavier-trained``): seed j's trained net is init j. The accounts were made when the curvature table set the two
groups' R² apart with Welch's test, as if independent; this gives, from their fits tables alone, Welch's p beside
the paired t's over the nets, the correlation of the pairs and whether the verdict at p = 0.05 differs. It measures
nothing.

    python bench/xavier_pairs.py    # bench/results/xavier_pairs.json

tests/test_bench.py checks that the committed JSON is what this computes from the accounts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from accounts import RESULTS, setting_fits

from multiarg.io import write_record
from multiarg.tables import paired_difference, welch_difference


def _r2(fits: list[dict], kind: str) -> dict[str, float]:
    """The R² of ``kind``'s curved fits, by seed (a flat fit, a plane fitted exactly, is left out as the tables
    leave it)."""
    return {r["seed"]: float(r["r2"]) for r in fits if r["kind"] == kind and r["sign"] != "flat"}


def rows(results: Path = RESULTS) -> list[dict]:
    """One row per account (the demo left out) and setting with both groups: Welch's and the paired t's p."""
    out = []
    for account, dataset, arch, fits in setting_fits(results):
        trained, init = _r2(fits, "xavier-trained"), _r2(fits, "xavier-init")
        seeds = sorted(trained.keys() & init.keys(), key=int)
        if len(seeds) < 3 or seeds != sorted(trained, key=int):
            continue
        a, b = [trained[s] for s in seeds], [init[s] for s in seeds]
        welch, paired = welch_difference(list(trained.values()), list(init.values())), paired_difference(a, b)
        out.append({"account": account.name, "dataset": dataset, "arch": arch, "pairs": len(seeds),
                    "diff": round(paired["diff"], 4), "correlation": round(float(np.corrcoef(a, b)[0, 1]), 3),
                    "welch_p": float(f"{welch['p']:.4g}"), "paired_p": float(f"{paired['p']:.4g}"),
                    "verdict_differs": (welch["p"] < 0.05) != (paired["p"] < 0.05)})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="the folder of run accounts")
    p.add_argument("--out", type=Path, default=RESULTS / "xavier_pairs.json")
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    record = {"command": " ".join(["python", "bench/xavier_pairs.py", *given]), "rows": rows(args.results)}
    if not record["rows"]:
        raise SystemExit(f"no run account under {args.results} has xavier-trained fits paired with their inits")
    write_record(record, args.out)
    for r in record["rows"]:
        print(f"{r['account']:34} {r['dataset']:8} {r['arch']:4} {r['pairs']} pairs, r = {r['correlation']:+.2f}: "
              f"Welch p = {r['welch_p']:.3g}, paired p = {r['paired_p']:.3g}"
              + ("  <- the verdict differs" if r["verdict_differs"] else ""))
    return record


if __name__ == "__main__":
    main()
