"""Pool the curvature sign tests of several committed runs, as the paper pools its CNN trials over MNIST and CIFAR-10
(48 = 2 x 24) for one binomial test.

Each account's `tables/curvature_tests.csv` gives, per dataset, the learned functions' count of negative curvatures
(and, in runs made since the test existed, their session-I starts' count and the sign changes between the two), and
its `tables/fits.csv` each function's normalised curvature, for a paired t of learned minus start over the pooled pairs
and a line fitted through them, learned on start (a slope of 1: a curvature kept from session I and moved by a
constant; 0: a curvature that session II sets whatever the start; the intercept: where a start with no curvature ends).
Runs are pooled per architecture over distinct datasets only: two accounts of one dataset x architecture would count
related networks twice, and are refused.

    python bench/pool_curvature.py --arch cnn bench/results/cifar10-cnn-narrow-cpu bench/results/mnist-cnn-narrow-cpu
"""
from __future__ import annotations

import argparse
from pathlib import Path

from accounts import table_rows
from common import environment, write
from torch import device

from multiarg.analysis import binomial_test
from multiarg.tables import paired_difference, regression


def _rows(account: Path, arch: str) -> list[dict]:
    return [r for r in table_rows(account, "curvature_tests") if r["arch"] == arch and r["dataset"] != "all"]


def curvature_pairs(accounts: list[Path], arch: str) -> list[tuple[float, float]]:
    """(start, learned) normalised curvature of each learned 2-arg function whose session-I start its account
    fitted, over all the accounts."""
    pairs = []
    for account in accounts:
        fits = [r for r in table_rows(account, "fits") if r["arch"] == arch]
        starts = {(r["dataset"], r["seed"]): float(r["curvature_normalised"]) for r in fits if r["kind"] == "start"}
        pairs += [(starts[r["dataset"], r["seed"]], float(r["curvature_normalised"])) for r in fits
                  if r["kind"] == "learned" and (r["dataset"], r["seed"]) in starts]
    return pairs


def pool(accounts: list[Path], arch: str) -> dict:
    """Summed counts of the learned functions and of their starts, with the binomial and McNemar tests on them, and
    the paired t of the normalised curvature's change and the line of learned on start over every (start, learned)
    pair."""
    by_dataset, learned, starts = {}, [], []
    for account in accounts:
        for r in _rows(account, arch):
            if r["kind"] not in ("learned", "start"):
                continue
            if r["kind"] == "learned":
                if r["dataset"] in by_dataset:
                    raise SystemExit(f"{arch} on {r['dataset']} is in both {by_dataset[r['dataset']]} and {account}")
                by_dataset[r["dataset"]] = str(account)
            (learned if r["kind"] == "learned" else starts).append(r)
    if not learned:
        raise SystemExit(f"no learned {arch} rows in {', '.join(map(str, accounts))}")
    total = lambda rows, key: sum(int(r[key]) for r in rows)  # noqa: E731
    test = binomial_test(total(learned, "k_negative"), total(learned, "n"))
    paired = [r for r in learned if r.get("to_negative", "") != ""]
    changes = binomial_test(total(paired, "to_negative"), total(paired, "to_negative") + total(paired, "to_positive"))
    pairs = curvature_pairs(accounts, arch)
    shift = paired_difference([learned for _, learned in pairs], [start for start, _ in pairs])
    return {"arch": arch, "datasets": by_dataset, "learned": {**test, "n_flat": total(learned, "n_flat")},
            "start": {**binomial_test(total(starts, "k_negative"), total(starts, "n")),
                      "datasets": sorted(r["dataset"] for r in starts)},
            "changes": {"datasets": sorted(r["dataset"] for r in paired), "to_negative": total(paired, "to_negative"),
                        "to_positive": total(paired, "to_positive"), "mcnemar_p_two_sided": changes["p_two_sided"]},
            "curvature_change": {"pairs": len(pairs), **(shift or {})},
            "start_dependence": regression([start for start, _ in pairs], [learned for _, learned in pairs])}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("accounts", nargs="+", type=Path, help="committed run accounts (bench/results/<name>)")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--out")
    args = p.parse_args(argv)
    pooled = pool(args.accounts, args.arch)
    learned, start, changes = pooled["learned"], pooled["start"], pooled["changes"]
    print(f"learned {args.arch}: {learned['k']}/{learned['n']} negative ({learned['fraction']:.3f}, 95% "
          f"[{learned['ci_low']:.3f}, {learned['ci_high']:.3f}]), two-sided p = {learned['p_two_sided']:.3g}")
    if start["n"]:
        print(f"their starts ({', '.join(start['datasets'])}): {start['k']}/{start['n']} negative; changes + to - "
              f"{changes['to_negative']}, - to + {changes['to_positive']}, McNemar p = "
              f"{changes['mcnemar_p_two_sided']:.3g}")
    shift = pooled["curvature_change"]
    if "p" in shift:
        print(f"normalised curvature, learned minus start, over {shift['pairs']} pairs: {shift['diff']:+.3f} (95% "
              f"[{shift['ci_low']:+.3f}, {shift['ci_high']:+.3f}]), paired t p = {shift['p']:.3g}")
    line = pooled["start_dependence"]
    if line:
        slope, intercept = line["slope"], line["intercept"]
        print(f"learned on start normalised curvature: slope {slope['estimate']:+.2f} (95% [{slope['ci_low']:+.2f}, "
              f"{slope['ci_high']:+.2f}], p = {slope['p']:.3g} against 0, {line['slope_p_vs_one']:.3g} against 1; "
              f"r = {line['r']:.2f}); a start of zero curvature ends at {intercept['estimate']:+.3f} (95% "
              f"[{intercept['ci_low']:+.3f}, {intercept['ci_high']:+.3f}], p = {intercept['p']:.3g})")
    result = {**environment(device("cpu")), "accounts": [str(a) for a in args.accounts], **pooled}
    print(f"wrote {write(result, f'pool_curvature-{args.arch}-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
