"""Per-function curvature of two runs side by side: the same seeds' quadratic fits (``tables/fits.csv``) from a
shorter and a longer training, which keep their sign and how their normalised curvature moves.

    python bench/compare_fits.py bench/results/mnist-mlp-cpu/tables/fits.csv \
        bench/results/mnist-mlp-long-cpu/tables/fits.csv      # the README's 8- against 40-epoch comparison

Prints one Markdown table per kind of function (learned, xavier-init, xavier-trained): functions in both runs,
how many keep their sign, the sign changes by seed, and the median normalised curvature of the functions negative
and positive in the second run, in each run. Only functions in both files are compared.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from statistics import median

KEY = ("kind", "dataset", "arch", "seed")


def read_fits(path: str | Path) -> dict[tuple, dict]:
    with open(path, newline="") as f:
        return {tuple(row[k] for k in KEY): row for row in csv.DictReader(f)}


def compare(first: dict[tuple, dict], second: dict[tuple, dict]) -> dict[str, dict]:
    """Per kind: ``n``, ``same_sign``, ``changes`` [(seed, sign before, sign after)] and, per sign in the second
    run, ``(count, median before, median after)`` of the normalised curvature."""
    out: dict[str, dict] = {}
    for key in sorted(first.keys() & second.keys(), key=lambda k: (k[0], k[1], k[2], int(k[3]))):
        a, b = first[key], second[key]
        kind = out.setdefault(key[0], {"n": 0, "same_sign": 0, "changes": [], "curvature": {}})
        kind["n"] += 1
        if a["sign"] == b["sign"]:
            kind["same_sign"] += 1
        else:
            kind["changes"].append((int(key[3]), a["sign"], b["sign"]))
        kind["curvature"].setdefault(b["sign"], []).append(
            (float(a["curvature_normalised"]), float(b["curvature_normalised"])))
    for kind in out.values():
        kind["curvature"] = {sign: (len(pairs), median(p[0] for p in pairs), median(p[1] for p in pairs))
                             for sign, pairs in sorted(kind["curvature"].items())}
    return out


def markdown(result: dict[str, dict], first: str, second: str) -> str:
    lines = [f"first: `{first}`; second: `{second}`", "",
             "| kind | n | same sign | sign changes (seed: first -> second) | sign in second: n, median curvature "
             "first -> second |", "|---|---|---|---|---|"]
    for kind, r in result.items():
        changes = ", ".join(f"{seed}: {a} -> {b}" for seed, a, b in r["changes"]) or "none"
        medians = "; ".join(f"{sign} {n}: {m1:+.2f} -> {m2:+.2f}" for sign, (n, m1, m2) in r["curvature"].items())
        lines.append(f"| {kind} | {r['n']} | {r['same_sign']} | {changes} | {medians} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", help="fits.csv of the shorter (or reference) run")
    p.add_argument("second", help="fits.csv of the other run")
    args = p.parse_args()
    print(markdown(compare(read_fits(args.first), read_fits(args.second)), args.first, args.second))


if __name__ == "__main__":
    main()
