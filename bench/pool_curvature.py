"""Pool the curvature sign tests of several committed runs, as the paper pools its CNN trials over MNIST and CIFAR-10
(48 = 2 x 24) for one binomial test.

Each account's `tables/fits.csv` gives each learned 2-arg function's curvature sign and normalised curvature, and in
runs made since the start test existed its session-I start's, for the sign test, McNemar's test of the sign changes,
a paired t of learned minus start and a line fitted learned on start (a slope of 1: a curvature kept from session I
and moved by a constant; 0: a curvature that session II sets whatever the start; the intercept: where a start with no
curvature ends). Runs are pooled per architecture over distinct datasets only: two accounts of one dataset x
architecture would count related networks twice, and are refused. A seed's nets on different datasets grow from one
session-I net where the runs' session I is the same (as it is for runs of one pretraining config on one kind of CPU),
so a seed is one unit: the tests are by seed (an exact sign-flip test of each seed's summed signs; t tests and the
line on each seed's mean), which is conservative where the runs' starts differ.

    python bench/pool_curvature.py --arch cnn bench/results/cifar10-cnn-narrow-cpu bench/results/mnist-cnn-narrow-cpu
"""
from __future__ import annotations

import argparse
from pathlib import Path

from accounts import fit_sign, table_rows
from common import environment, write
from torch import device

from multiarg.analysis import sign_changes, sign_test, start_means
from multiarg.tables import paired_difference, regression


def functions(accounts: list[Path], arch: str) -> tuple[dict[tuple, dict], dict[str, str]]:
    """The accounts' learned and start fits of ``arch`` by ``(kind, dataset, seed)``; a dataset in two accounts is
    refused. Returns them with ``{dataset: account}``."""
    fits, by_dataset = {}, {}
    for account in accounts:
        rows = [r for r in table_rows(account, "fits") if r["arch"] == arch and r["kind"] in ("learned", "start")]
        for dataset in sorted({r["dataset"] for r in rows}):
            if dataset in by_dataset:
                raise SystemExit(f"{arch} on {dataset} is in both {by_dataset[dataset]} and {account}")
            by_dataset[dataset] = str(account)
        fits |= {(r["kind"], r["dataset"], r["seed"]): r for r in rows}
    if not any(kind == "learned" for kind, _, _ in fits):
        raise SystemExit(f"no learned {arch} fits in {', '.join(map(str, accounts))}")
    return fits, by_dataset


def signs(rows: list[dict], ridge_tolerance: float = 0.0) -> list[int]:
    return [fit_sign(r, ridge_tolerance) for r in rows]


def add_ridge_tolerance(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ridge-tolerance", type=float, default=0.0,
                   help="tie the fits of |det A / tr A^2| under this as ridges (analysis.ridge_tolerance; 0: none)")


def seeds(rows: list[dict]) -> list[str]:
    return [r["seed"] for r in rows]


def seed_means(rows: list[dict]) -> list[float]:
    """Each seed's mean normalised curvature over ``rows``, in the order the seeds first come."""
    return start_means([float(r["curvature_normalised"]) for r in rows], seeds(rows))


def pool(accounts: list[Path], arch: str, ridge_tolerance: float = 0.0) -> dict:
    """The learned functions' and their starts' sign tests, McNemar's test of the sign changes (ridges under
    ``ridge_tolerance`` tied), the paired t of the normalised curvature's change and the line of learned on start,
    all by seed."""
    fits, by_dataset = functions(accounts, arch)
    learned = [r for (kind, _, _), r in sorted(fits.items()) if kind == "learned"]
    pairs = [(fits["start", r["dataset"], r["seed"]], r) for r in learned if ("start", r["dataset"], r["seed"]) in fits]
    began, ended = ([pair[i] for pair in pairs] for i in (0, 1))
    changes = sign_changes(signs(began, ridge_tolerance), signs(ended, ridge_tolerance), seeds(ended))
    return {"arch": arch, "datasets": by_dataset, "ridge_tolerance": ridge_tolerance,
            "learned": sign_test(signs(learned, ridge_tolerance), seeds(learned)),
            "start": {**sign_test(signs(began, ridge_tolerance), seeds(began)),
                      "datasets": sorted({r["dataset"] for r in began})},
            "changes": {"to_negative": changes["to_negative"], "to_positive": changes["to_positive"],
                        "n_starts": changes["n_starts"], "mcnemar_p_two_sided": changes["p_two_sided"]},
            "curvature_change": {"pairs": len(pairs), "seeds": len(set(seeds(ended))),
                                 **(paired_difference(seed_means(ended), seed_means(began)) or {})},
            "start_dependence": regression(seed_means(began), seed_means(ended))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("accounts", nargs="+", type=Path, help="committed run accounts (bench/results/<name>)")
    p.add_argument("--arch", default="cnn")
    add_ridge_tolerance(p)
    p.add_argument("--out")
    args = p.parse_args(argv)
    pooled = pool(args.accounts, args.arch, args.ridge_tolerance)
    learned, start, changes = pooled["learned"], pooled["start"], pooled["changes"]
    print(f"learned {args.arch}: {learned['k']}/{learned['n']} negative from {learned['n_starts']} seeds "
          f"({learned['fraction']:.3f}, 95% [{learned['ci_low']:.3f}, {learned['ci_high']:.3f}]), two-sided p = "
          f"{learned['p_two_sided']:.3g}")
    if start["n"]:
        print(f"their starts ({', '.join(start['datasets'])}): {start['k']}/{start['n']} negative; changes + to - "
              f"{changes['to_negative']}, - to + {changes['to_positive']} (from {changes['n_starts']} seeds), McNemar "
              f"p = {changes['mcnemar_p_two_sided']:.3g}")
    shift = pooled["curvature_change"]
    if "p" in shift:
        print(f"normalised curvature, learned minus start, over {shift['pairs']} pairs, {shift['seeds']} seeds' means: "
              f"{shift['diff']:+.3f} (95% "
              f"[{shift['ci_low']:+.3f}, {shift['ci_high']:+.3f}]), paired t p = {shift['p']:.3g}")
    line = pooled["start_dependence"]
    if line:
        slope, intercept = line["slope"], line["intercept"]
        print(f"learned on start normalised curvature, seeds' means: slope {slope['estimate']:+.2f} (95% "
              f"[{slope['ci_low']:+.2f}, {slope['ci_high']:+.2f}], p = {slope['p']:.3g} against 0, "
              f"{line['slope_p_vs_one']:.3g} against 1; r = {line['r']:.2f}); a start of zero curvature ends at "
              f"{intercept['estimate']:+.3f} (95% "
              f"[{intercept['ci_low']:+.3f}, {intercept['ci_high']:+.3f}], p = {intercept['p']:.3g})")
    result = {**environment(device("cpu")), "accounts": [str(a) for a in args.accounts], **pooled}
    print(f"wrote {write(result, f'pool_curvature-{args.arch}-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
