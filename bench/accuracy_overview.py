"""The paper's accuracy claims across every committed run account in one figure: per run, the 2-arg net's test
accuracy (session III, at the best validation epoch) and early test accuracy (session II's first epochs) minus each
baseline's that has two or more seeds there: ReLU and the 1-arg net matched in parameters, and where the run trains
them, ReLU and the 1-arg net matched in forward FLOPs or at the 2-arg net's own widths. Welch's 95% interval from the
per-seed values where the account keeps them (`tables/summary_values.json`), else from the means and SDs its
`tables/summary.csv` prints (two decimals); unadjusted, as a picture of the runs, not a test. Reads only the
committed accounts; measures nothing.

    python bench/accuracy_overview.py    # bench/results/accuracy_overview.{json,pdf,png}

tests/test_bench.py checks that the committed JSON is what this computes.
"""
from __future__ import annotations

from pathlib import Path

from accounts import RESULTS, figure_record, table_rows, tested_accounts

from multiarg.comparison import finite, read_values
from multiarg.tables import welch_difference, welch_from_summary

BASELINES = ("relu", "arg1", "relu-flops", "arg1-flops", "relu-width", "arg1-width")
METRICS = {"test_acc": "test accuracy (session III)", "early_acc": "early test accuracy (session II)"}


def _difference(seeds: dict | None, summary: dict, setting: tuple, baseline: str, metric: str
                ) -> tuple[dict | None, str]:
    """2-arg minus ``baseline`` on ``metric`` (Welch), and what it came from: the seeds' values where the account
    keeps them (``seeds``), else the summary table's means and SDs."""
    if seeds is not None:
        a, b = (finite(seeds[(*setting, act)], metric) for act in ("arg2", baseline))
        return welch_difference(a, b), "seeds"
    a, b = summary[(*setting, "arg2")], summary[(*setting, baseline)]
    return welch_from_summary(float(a[metric]), float(a[f"{metric}_sd"] or 0), int(a["seeds"]),
                              float(b[metric]), float(b[f"{metric}_sd"] or 0), int(b["seeds"])), "summary"


def rows(results: Path = RESULTS) -> list[dict]:
    """One row per account (the demo left out), setting, baseline and metric where the 2-arg net and the baseline
    both have two or more seeds."""
    out = []
    for account in tested_accounts(results):
        summary = {(r["dataset"], r["arch"], r["activation"]): r for r in table_rows(account, "summary")}
        values = account / "tables" / "summary_values.json"
        seeds = read_values(values) if values.exists() else None
        for (dataset, arch, activation), arg2 in summary.items():
            if activation != "arg2":
                continue
            for baseline, metric in ((b, m) for b in BASELINES for m in METRICS):
                other = summary.get((dataset, arch, baseline))
                if not other or not arg2[metric] or not other[metric]:
                    continue
                test, source = _difference(seeds, summary, (dataset, arch), baseline, metric)
                if test:
                    out.append({"account": account.name, "dataset": dataset, "arch": arch, "baseline": baseline,
                                "metric": metric, "diff": round(test["diff"], 2),
                                "ci95": [round(test["ci_low"], 2), round(test["ci_high"], 2)],
                                "p": float(f"{test['p']:.3g}"), "from": source})
    return out


def draw(table: list[dict], out: Path) -> None:
    """A row of panels per setting (each on its own scale), a column per metric; a line per run and baseline,
    coloured by the baseline; filled where the interval leaves out 0."""
    from matplotlib.lines import Line2D

    from multiarg.comparison_figures import DESIGN_COLORS
    from multiarg.figures import LABELS, legend_under, plt, save, stamp

    settings = sorted({(r["dataset"], r["arch"]) for r in table}, key=lambda s: (s[0] != "mnist", s))
    lines = {s: sorted({(r["account"], r["baseline"]) for r in table if (r["dataset"], r["arch"]) == s},
                       key=lambda l: (l[0], BASELINES.index(l[1]))) for s in settings}
    metrics = {m: t for m, t in METRICS.items() if any(r["metric"] == m for r in table)}
    fig, axes = plt.subplots(len(settings), len(metrics), squeeze=False, sharey="row",
                             figsize=(4.2 * len(metrics), 1 + sum(0.24 * len(v) + 0.6 for v in lines.values())),
                             height_ratios=[len(lines[s]) + 1 for s in settings])
    for row, setting in zip(axes, settings):
        order = lines[setting]
        for ax, (metric, title) in zip(row, metrics.items()):
            ax.axvline(0, color="0.6", lw=0.8)
            for r in (r for r in table if (r["dataset"], r["arch"], r["metric"]) == (*setting, metric)):
                y, color = order.index((r["account"], r["baseline"])), DESIGN_COLORS[r["baseline"]]
                ax.plot(r["ci95"], [y, y], color=color, lw=1.6)
                apart = r["ci95"][0] > 0 or r["ci95"][1] < 0
                ax.plot(r["diff"], y, "o", ms=5, color=color, markerfacecolor=color if apart else "white")
            for y in range(1, len(order)):  # between one run's lines and the next's
                if order[y][0] != order[y - 1][0]:
                    ax.axhline(y - 0.5, color="0.85", lw=0.6)
            runs = list(dict.fromkeys(a for a, _ in order))
            ax.set_yticks([sum(i for i, l in enumerate(order) if l[0] == a) / sum(l[0] == a for l in order)
                           for a in runs], [a.removesuffix("-cpu") for a in runs], fontsize=7)
            ax.tick_params(axis="y", length=0)
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.set_title(f"{setting[0]} {setting[1].upper()}: {title}", fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("2-arg minus the baseline (points)", fontsize=7)
    key = [Line2D([], [], marker="o", color=DESIGN_COLORS[b], label=f"− {LABELS[b]}")
           for b in BASELINES if any(r["baseline"] == b for r in table)]
    fig.tight_layout()
    legend_under(axes[-1, 0], key, x=0, loc="upper left", ncol=len(key))
    stamp(fig, "the committed run accounts (2-core CPUs, none at paper scale)",
          {"python bench/accuracy_overview.py", "mean difference, Welch 95% interval (from each seed's value, or "
           "from the printed means and SDs where an account keeps no seeds' values); filled: the interval leaves out "
           "0 (unadjusted)"})
    save(fig, out)


def main(argv=None) -> dict:
    return figure_record(__doc__, "accuracy_overview", rows, draw, argv)


if __name__ == "__main__":
    main()
