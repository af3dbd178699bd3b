"""Two committed runs of one setting that differ in one config key (such as `pretrain.boundary`), compared trial by
trial: each learned 2-arg function of the first run beside the same trial's in the second, and likewise their
session-I starts.

A trial's seed fixes its outer net's initialisation and data order, so two runs of one setting that differ only in
session I's blur train the same outer nets from different starting nonlinearities. Per kind (start, learned): each
run's count of negative curvatures, McNemar's exact test of the trials whose sign differs between the runs, and a
paired t of the normalised curvature (second run minus first). Read from each account's `tables/fits.csv`.

    python bench/compare_curvature.py --arch mlp bench/results/cifar10-mlp-rerun-cpu bench/results/cifar10-mlp-wrap-cpu
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import environment, write
from pool_curvature import trials
from torch import device

from multiarg.analysis import sign_changes
from multiarg.tables import paired_difference


def compare(first: Path, second: Path, arch: str) -> dict:
    """Per kind, the trials both accounts fitted: negative counts, sign differences (McNemar) and the paired t."""
    a, b = trials(first, arch), trials(second, arch)
    result = {}
    for kind in ("start", "learned"):
        keys = sorted(k for k in set(a) & set(b) if kind in a[k] and kind in b[k])
        if len(keys) < 2:
            raise SystemExit(f"{first} and {second} share fewer than two {arch} trials with a {kind} fit")
        (sign_a, curv_a), (sign_b, curv_b) = (zip(*[run[k][kind] for k in keys]) for run in (a, b))
        test = sign_changes(sign_a, sign_b)
        result[kind] = {"trials": len(keys), "datasets": sorted({d for d, _ in keys}),
                        "negative": [sum(s < 0 for s in sign_a), sum(s < 0 for s in sign_b)],
                        "positive_to_negative": test["to_negative"], "negative_to_positive": test["to_positive"],
                        "mcnemar_p_two_sided": test["p_two_sided"],
                        "curvature_difference": paired_difference(curv_b, curv_a)}
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("accounts", nargs=2, type=Path, help="two committed run accounts (bench/results/<name>)")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--out")
    args = p.parse_args(argv)
    compared = compare(*args.accounts, args.arch)
    for kind, c in compared.items():
        d = c["curvature_difference"]
        print(f"{kind} {args.arch} ({c['trials']} trials): {c['negative'][0]} and {c['negative'][1]} negative; "
              f"{c['positive_to_negative']} + to -, {c['negative_to_positive']} - to + (McNemar p = "
              f"{c['mcnemar_p_two_sided']:.3g}); normalised curvature, second minus first: {d['diff']:+.3f} (95% "
              f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]), paired t p = {d['p']:.3g}")
    result = {**environment(device("cpu")), "accounts": [str(a) for a in args.accounts], "arch": args.arch,
              **compared}
    print(f"wrote {write(result, f'compare_curvature-{args.arch}-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
