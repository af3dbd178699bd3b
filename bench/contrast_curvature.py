"""Whether two pools of learned 2-arg functions differ in curvature: the paper's contrast of its CNN nonlinearities
(78% of 48 negative, XOR-like) with its MLP ones (7 of 24 negative), tested between two pools of committed accounts
(each pooled as bench/pool_curvature.py pools them, e.g. the narrow CNNs and the MLPs from one session-I edge mode).

    python bench/contrast_curvature.py --pool cnn bench/results/cifar10-cnn-narrow-wrap-cpu \
        bench/results/mnist-cnn-narrow-wrap-cpu --pool mlp bench/results/cifar10-mlp-wrap-cpu \
        bench/results/mnist-mlp-wrap-cpu --out bench/results/contrast_curvature-wrap-cpu.json

The two pools' functions of one dataset and seed grew from one session-I net where the runs' session I is the same,
so they are tested as pairs, a seed's pairs as one unit (conservative where the starts differ). For the learned
functions and for their session-I starts: McNemar's test of the pairs whose signs differ (an exact sign-flip test of
each seed's count), with the share of those where the first pool's is the negative one, and a paired t of the
normalised curvature (first minus second, each seed's mean). Then the learned difference regressed on the starts':
its intercept is how differently the pools end from starts of equal curvature, which sets the starts' own
difference (the same net over each architecture's inputs) aside.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import environment, write
import numpy as np
from pool_curvature import add_ridge_tolerance, functions, pool, seed_means, seeds, signs
from torch import device

from multiarg.analysis import sign_changes
from multiarg.tables import paired_difference, regression


def contrast(pools: list[tuple[str, list[Path]]], ridge_tolerance: float = 0.0) -> dict:
    """Both pools as :func:`pool_curvature.pool` gives them, and the paired tests between them (first against
    second), ridges under ``ridge_tolerance`` tied."""
    (first, _), (second, _) = (functions(accounts, arch) for arch, accounts in pools)
    shared = sorted(set(first) & set(second))
    if not any(kind == "start" for kind, _, _ in shared):
        raise SystemExit("each pool needs accounts with session-I start fits of the same datasets and seeds (runs "
                         "made since the start test: tables/fits.csv rows of kind 'start')")
    result = {"ridge_tolerance": ridge_tolerance,
              "pools": [{"accounts": [str(a) for a in accounts], **pool(accounts, arch, ridge_tolerance)}
                        for arch, accounts in pools]}
    for when in ("start", "learned"):
        a, b = ([side[key] for key in shared if key[0] == when] for side in (first, second))
        # "to negative": the first pool's alone negative
        test = sign_changes(signs(b, ridge_tolerance), signs(a, ridge_tolerance), seeds(a))
        result[when] = {"pairs": len(a), "first_only_negative": test["to_negative"],
                        "second_only_negative": test["to_positive"],
                        **{k: test[k] for k in ("n_starts", "fraction", "ci_low", "ci_high", "p_two_sided")},
                        "curvature_difference": paired_difference(seed_means(a), seed_means(b))}
    both = [(dataset, seed) for kind, dataset, seed in shared if kind == "learned" and ("start", dataset, seed) in first
            and ("start", dataset, seed) in second]
    start_gap, learned_gap = (np.subtract(*(seed_means([side[kind, *key] for key in both]) for side in (first, second)))
                              for kind in ("start", "learned"))
    result["start_adjusted"] = regression(start_gap, learned_gap)
    return result


def _print(result: dict) -> None:
    names = [f"{p['arch']} ({', '.join(sorted(p['datasets']))})" for p in result["pools"]]
    for when in ("start", "learned"):
        c, shift = result[when], result[when]["curvature_difference"]
        counts = " against ".join(f"{name} {p[when]['k']}/{p[when]['n']}" for name, p in zip(names, result["pools"]))
        print(f"{when:>7}: {counts} negative; of {c['pairs']} pairs, {c['first_only_negative']} first alone negative, "
              f"{c['second_only_negative']} second alone (from {c['n_starts']} seeds), McNemar p = "
              f"{c['p_two_sided']:.3g}; normalised curvature, first minus second, {shift['diff']:+.3f} (95% "
              f"[{shift['ci_low']:+.3f}, {shift['ci_high']:+.3f}]), paired t p = {shift['p']:.3g}")
    line = result["start_adjusted"]
    if line:
        d = line["intercept"]
        print(f"learned difference on start difference, seeds' means: from equal starts the first ends "
              f"{d['estimate']:+.3f} from the second (95% [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]), p = "
              f"{d['p']:.3g}; slope {line['slope']['estimate']:+.2f}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", nargs="+", action="append", required=True, metavar="ARCH ACCOUNT",
                   help="an architecture and the committed accounts (bench/results/<name>) to pool for it; twice")
    add_ridge_tolerance(p)
    p.add_argument("--out")
    args = p.parse_args(argv)
    if len(args.pool) != 2 or any(len(group) < 2 for group in args.pool):
        p.error("give --pool ARCH ACCOUNT [ACCOUNT ...] exactly twice")
    result = contrast([(arch, [Path(a) for a in accounts]) for arch, *accounts in args.pool], args.ridge_tolerance)
    _print(result)
    result = {**environment(device("cpu")), **result}
    print(f"wrote {write(result, 'contrast_curvature-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
