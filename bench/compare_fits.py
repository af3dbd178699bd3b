"""Per-function curvature of two runs side by side: the same seeds' quadratic fits (``tables/fits.csv``) from two
runs of one setting that differ in one thing (a shorter and a longer training, session I's blur edges, the CPU's
instruction set), which keep their sign and how their normalised curvature moves. A seed fixes its trial's outer-net
initialisation and data order, so the runs' functions pair up by seed.

    python bench/compare_fits.py bench/results/mnist-mlp-cpu/tables/fits.csv \
        bench/results/mnist-mlp-long-cpu/tables/fits.csv      # the README's 8- against 40-epoch comparison

Prints one Markdown table per kind of function (learned, start, xavier-init, xavier-trained): functions in both runs,
how many keep their sign, the sign changes by seed, the median normalised curvature of the functions negative and
positive in the second run, in each run, McNemar's exact test of the sign changes and a paired t of the normalised
curvature (second run minus first); --out also writes them as JSON. Only functions in both files are compared.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from statistics import median

from accounts import SIGN_VALUES
from common import environment, write
from torch import device

from multiarg.analysis import sign_changes
from multiarg.tables import paired_difference

KEY = ("kind", "dataset", "arch", "seed")


def read_fits(path: str | Path) -> dict[tuple, dict]:
    with open(path, newline="") as f:
        return {tuple(row[k] for k in KEY): row for row in csv.DictReader(f)}


def compare(first: dict[tuple, dict], second: dict[tuple, dict]) -> dict[str, dict]:
    """Per kind: ``n``, ``same_sign``, ``changes`` [(seed, sign before, sign after)], per sign in the second run
    ``(count, median before, median after)`` of the normalised curvature, McNemar's test of the changes
    (``to_negative``, ``to_positive``, ``mcnemar_p_two_sided``) and the paired t ``curvature_difference``."""
    out: dict[str, dict] = {}
    for key in sorted(first.keys() & second.keys(), key=lambda k: (k[0], k[1], k[2], int(k[3]))):
        a, b = first[key], second[key]
        kind = out.setdefault(key[0], {"n": 0, "same_sign": 0, "changes": [], "curvature": {}, "pairs": []})
        kind["n"] += 1
        kind["pairs"].append((a, b))
        if a["sign"] == b["sign"]:
            kind["same_sign"] += 1
        else:
            kind["changes"].append((int(key[3]), a["sign"], b["sign"]))
        kind["curvature"].setdefault(b["sign"], []).append(
            (float(a["curvature_normalised"]), float(b["curvature_normalised"])))
    for r in out.values():
        pairs = r.pop("pairs")
        test = sign_changes(*zip(*[(SIGN_VALUES[a["sign"]], SIGN_VALUES[b["sign"]]) for a, b in pairs]))
        r.update(to_negative=test["to_negative"], to_positive=test["to_positive"],
                 mcnemar_p_two_sided=test["p_two_sided"],
                 curvature_difference=paired_difference(*zip(*[(float(b["curvature_normalised"]),
                                                                float(a["curvature_normalised"])) for a, b in pairs])))
        r["curvature"] = {sign: (len(p), median(x[0] for x in p), median(x[1] for x in p))
                          for sign, p in sorted(r["curvature"].items())}
    return out


def markdown(result: dict[str, dict], first: str, second: str) -> str:
    lines = [f"first: `{first}`; second: `{second}`", "",
             "| kind | n | same sign | sign changes (seed: first -> second) | sign in second: n, median curvature "
             "first -> second | McNemar p | normalised curvature, second - first (95%), paired t p |",
             "|---|---|---|---|---|---|---|"]
    for kind, r in result.items():
        changes = ", ".join(f"{seed}: {a} -> {b}" for seed, a, b in r["changes"]) or "none"
        medians = "; ".join(f"{sign} {n}: {m1:+.2f} -> {m2:+.2f}" for sign, (n, m1, m2) in r["curvature"].items())
        d = r["curvature_difference"]
        moved = f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], p = {d['p']:.3g}" if d else "n/a"
        lines.append(f"| {kind} | {r['n']} | {r['same_sign']} | {changes} | {medians} | "
                     f"{r['mcnemar_p_two_sided']:.3g} | {moved} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", help="fits.csv of the shorter (or reference) run")
    p.add_argument("second", help="fits.csv of the other run")
    p.add_argument("--out", help="also write the comparison here as JSON")
    args = p.parse_args(argv)
    result = compare(read_fits(args.first), read_fits(args.second))
    print(markdown(result, args.first, args.second))
    if args.out:
        record = {**environment(device("cpu")), "fits": [args.first, args.second], **result}
        print(f"wrote {write(record, 'compare_fits-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
