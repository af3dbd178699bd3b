"""Whether two pools of learned 2-arg functions differ in curvature: the paper's contrast of its CNN nonlinearities
(78% of 48 negative, XOR-like) with its MLP ones (7 of 24 negative), tested between two pools of committed accounts
(each pooled as bench/pool_curvature.py pools them, e.g. the narrow CNNs and the MLPs from one session-I edge mode).

    python bench/contrast_curvature.py --pool cnn bench/results/cifar10-cnn-narrow-wrap-cpu \
        bench/results/mnist-cnn-narrow-wrap-cpu --pool mlp bench/results/cifar10-mlp-wrap-cpu \
        bench/results/mnist-mlp-wrap-cpu --out bench/results/contrast_curvature-wrap-cpu.json

For the learned functions and for their session-I starts: Fisher's exact test of the two pools' counts of negative
curvatures, with the conditional odds ratio (first pool's odds of negative over the second's) and its exact 95%
interval, and a Welch t of the normalised curvature (first minus second). Then the two lines of learned on start
normalised curvature compared (second minus first, one residual variance): the difference of their intercepts is how
differently the two pools end from a start with no curvature, which sets the starts' own difference aside where both
pools' starts span zero.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import environment, write
from pool_curvature import curvature_pairs, pool
from torch import device

from multiarg.analysis import count_contrast
from multiarg.tables import line_difference, welch_difference


def contrast(pools: list[tuple[str, list[Path]]]) -> dict:
    """Both pools as :func:`pool_curvature.pool` gives them, and the tests between them (first against second)."""
    pooled = [pool(accounts, arch) for arch, accounts in pools]
    pairs = [curvature_pairs(accounts, arch) for arch, accounts in pools]
    if not all(pairs):
        raise SystemExit("each pool needs accounts with session-I start fits (runs made since the start test: "
                         "tables/fits.csv rows of kind 'start')")
    (starts1, learned1), (starts2, learned2) = (zip(*group) for group in pairs)
    first, second = pooled
    return {"pools": [{"accounts": [str(a) for a in accounts], **p} for (_, accounts), p in zip(pools, pooled)],
            **{when: {**count_contrast(first[when]["k"], first[when]["n"], second[when]["k"], second[when]["n"]),
                      "curvature_difference": welch_difference(*curvatures)}
               for when, curvatures in (("start", (starts1, starts2)), ("learned", (learned1, learned2)))},
            "lines": line_difference(starts1, learned1, starts2, learned2)}


def _print(result: dict) -> None:
    names = [f"{p['arch']} ({', '.join(sorted(p['datasets']))})" for p in result["pools"]]
    for when in ("start", "learned"):
        c, shift = result[when], result[when]["curvature_difference"]
        counts = " against ".join(f"{name} {p[when]['k']}/{p[when]['n']}" for name, p in zip(names, result["pools"]))
        print(f"{when:>7}: {counts} negative; "
              f"odds ratio {c['odds_ratio']:.2f} (95% [{c['ci_low']:.2f}, {c['ci_high']:.2f}]), Fisher p = "
              f"{c['p_two_sided']:.3g}; normalised curvature, first minus second, {shift['diff']:+.3f} "
              f"(95% [{shift['ci_low']:+.3f}, {shift['ci_high']:+.3f}]), Welch p = {shift['p']:.3g}")
    lines = result["lines"]
    if lines:
        for part in ("intercept", "slope"):
            d = lines[part]
            print(f"learned on start, {part}, second minus first: {d['diff']:+.3f} (95% [{d['ci_low']:+.3f}, "
                  f"{d['ci_high']:+.3f}]), p = {d['p']:.3g}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", nargs="+", action="append", required=True, metavar="ARCH ACCOUNT",
                   help="an architecture and the committed accounts (bench/results/<name>) to pool for it; twice")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if len(args.pool) != 2 or any(len(group) < 2 for group in args.pool):
        p.error("give --pool ARCH ACCOUNT [ACCOUNT ...] exactly twice")
    result = contrast([(arch, [Path(a) for a in accounts]) for arch, *accounts in args.pool])
    _print(result)
    result = {**environment(device("cpu")), **result}
    print(f"wrote {write(result, 'contrast_curvature-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
