"""The summary drawn: bars of every activation's metrics (``fig_compare``) and a forest plot of the versus tables'
differences with their intervals (``fig_versus``)."""
from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np

from .comparison import QUALITY
from .figures import COLORS, LABELS, plt, save, stamp
from .tables import read_interval

# The recurrent experiment's tanh has no colour in the paper's figures; both figures here give it the same one.
DESIGN_COLORS = {**COLORS, "tanh": "tab:gray"}


def fig_compare(args) -> None:
    """Bars per setting and activation: test accuracy, early accuracy, AutoAttack robust accuracy, CIFAR-10-C
    mCE, s/epoch."""
    with open(args.summary) as fh:
        rows = list(csv.DictReader(fh))
    panels = [(m, t) for m, t in (("test_acc", "test accuracy (%)"),
                                  ("early_acc", "session-II test accuracy, first epochs (%)"),
                                  ("robust_acc", "robust accuracy (%)"),
                                  ("mce", "CIFAR-10-C mCE (%)"), ("sec_per_epoch", "seconds per epoch"))
              if any(r[m] for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    acts = list(dict.fromkeys(a for a in [*DESIGN_COLORS, *(r["activation"] for r in rows)]
                              if any(r["activation"] == a for r in rows)))
    for ax, (metric, title) in zip(axes[0], panels):
        settings = sorted({(r["dataset"], r["arch"]) for r in rows if r[metric]})
        width = 0.8 / len(acts)
        for i, act in enumerate(acts):
            got = {(r["dataset"], r["arch"]): r for r in rows if r["activation"] == act and r[metric]}
            xs = [j for j, s in enumerate(settings) if s in got]
            mean = [float(got[settings[j]][metric]) for j in xs]
            sd = [float(got[settings[j]][f"{metric}_sd"] or 0) for j in xs]
            ax.bar(np.array(xs) + (i - (len(acts) - 1) / 2) * width, mean, width, yerr=sd, capsize=1.5,
                   color=DESIGN_COLORS.get(act, "0.5"), label=LABELS.get(act, act))
        ax.set_xticks(range(len(settings)), [f"{d}\n{a}" for d, a in settings], fontsize=7)
        ax.set_title(title, fontsize=9)
        if metric == "sec_per_epoch":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    stamp(fig, args.scale, {"bars: mean ± SD over seeds"})
    save(fig, args.out)


def forest_rows(tables: list[str]) -> list[dict]:
    """The comparisons of the versus tables (``write_versus``), each once: a table against a reference an earlier
    one had is skipped, and a row setting an earlier table's reference against this one's mirrors a row already
    taken (2-arg minus ReLU and ReLU minus 2-arg), so it is dropped."""
    out, references = [], []
    for path in tables:
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            continue
        reference = next(c[:-len("_mean")] for c in rows[0] if c.endswith("_mean") and c != "mean")
        if reference in references:
            continue
        for r in rows:
            if r["activation"] not in references:
                out.append({"dataset": r["dataset"], "arch": r["arch"], "metric": r["metric"],
                            "activation": r["activation"], "reference": reference, "diff": float(r["diff"]),
                            "ci95": read_interval(r["ci95"]),
                            "significant": bool(r["p_holm"]) and float(r["p_holm"]) < 0.05})
        references.append(reference)
    return out


def fig_versus(args) -> None:
    """Forest plot of the versus tables: each design's difference from its reference with Welch's 95% interval,
    one row of panels per setting (each on its own scale, so a small setting's differences show), one column per
    metric; filled markers where the Holm-adjusted p is below 0.05."""
    rows = forest_rows(args.tables)
    settings = sorted({(r["dataset"], r["arch"]) for r in rows})
    metrics = [m for m in QUALITY if any(r["metric"] == m for r in rows)]
    references = list(dict.fromkeys(r["reference"] for r in rows))
    designs = [*DESIGN_COLORS, *sorted({r["activation"] for r in rows} - set(DESIGN_COLORS))]
    panels = defaultdict(list)
    for r in rows:
        panels[r["dataset"], r["arch"], r["metric"]].append(r)
    pairs = {s: sorted({(r["activation"], r["reference"]) for r in rows if (r["dataset"], r["arch"]) == s},
                       key=lambda p: (references.index(p[1]), designs.index(p[0]))) for s in settings}
    fig, axes = plt.subplots(len(settings), len(metrics), squeeze=False, sharey="row",
                             figsize=(3.4 * len(metrics), sum(0.8 + 0.22 * len(p) for p in pairs.values())),
                             gridspec_kw={"height_ratios": [1 + len(pairs[s]) for s in settings]})
    titles = {"test_acc": "test accuracy", "early_acc": "early test accuracy", "robust_acc": "robust accuracy",
              "mce": "CIFAR-10-C mCE (lower is better)"}
    for (dataset, arch), row in zip(settings, axes):
        order = pairs[dataset, arch]
        for ax, metric in zip(row, metrics):
            if not panels[dataset, arch, metric]:
                ax.set_visible(False)  # e.g. mCE outside CIFAR-10
                continue
            ax.axvline(0, color="0.6", lw=0.8)
            for y in range(1, len(order)):  # between the comparisons against one reference and the next
                if order[y][1] != order[y - 1][1]:
                    ax.axhline(y - 0.5, color="0.8", lw=0.6, ls="--")
            for r in panels[dataset, arch, metric]:
                y, color = order.index((r["activation"], r["reference"])), DESIGN_COLORS.get(r["activation"], "0.5")
                if r["ci95"]:
                    ax.plot(r["ci95"], [y, y], color=color, lw=1.5)
                ax.plot(r["diff"], y, "o", ms=5, color=color, markerfacecolor=color if r["significant"] else "white")
            ax.set_yticks(range(len(order)), [f"{LABELS.get(a, a)} − {LABELS.get(ref, ref)}" for a, ref in order],
                          fontsize=7)
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.set_title(f"{dataset} {arch}: {titles[metric]}", fontsize=8)
            ax.set_xlabel("difference (points)", fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    stamp(fig, args.scale, {"mean difference, Welch 95% interval; filled: Holm-adjusted p < 0.05 within its table"})
    save(fig, args.out)
