"""The curvature sign tests of every committed run account in one figure: per run and setting, the share of its
learned 2-arg nets that curve negatively (XOR-like), beside the share of their session-I starts, each with its
Clopper-Pearson 95% interval, coloured by the session-I blur's edge mode; the paper's shares and ½ marked. Reads only
the committed accounts (and, for the runs made before the workflow fitted the starts, the record of
`bench/start_curvature.py` that fitted them from their run folders); measures nothing.

    python bench/curvature_overview.py    # bench/results/curvature_overview.{json,pdf,png}

tests/test_bench.py checks that the committed JSON is what this computes, so the figure cannot drift from the
accounts.
"""
from __future__ import annotations

import json
from pathlib import Path

from accounts import RESULTS, edges, figure_record, table_rows, tested_accounts

from multiarg.analysis import binomial_test
from multiarg.claims import PAPER_CURVATURE

# the record that fitted the starts of the runs made before the workflow did, beside the accounts
STARTS_RECORD = "start_curvature-cpu.json"
EDGE_COLORS = {"reflect": "tab:orange", "wrap": "tab:blue"}


def _recorded_starts(record: Path) -> dict[str, dict]:
    """The starts ``bench/start_curvature.py`` fitted from run folders, by the account its label names."""
    if not record.exists():
        return {}
    return {f"{run['label']}-cpu": run for run in json.loads(record.read_text())["runs"]}


def _share(k: int, n: int) -> dict:
    test = binomial_test(k, n)
    return {"k": k, "n": n, "fraction": round(test["fraction"], 4), "ci95": [round(test["ci_low"], 4),
                                                                          round(test["ci_high"], 4)]}


def rows(results: Path = RESULTS) -> list[dict]:
    """One row per account (the demo left out: its scale tests nothing) and dataset x architecture: the learned
    nets' negative share and, where fitted, their starts'. A recorded start counts only if the record's learned
    count is the account's, so that it describes the same run."""
    recorded, out = _recorded_starts(results / STARTS_RECORD), []
    for account in tested_accounts(results):
        table = [r for r in table_rows(account, "curvature_tests") if "all" not in (r["arch"], r["dataset"])]
        starts = {(r["arch"], r["dataset"]): r for r in table if r["kind"] == "start"}
        run, edge_mode = recorded.get(account.name), edges(account)
        for r in (r for r in table if r["kind"] == "learned"):
            k, n = int(r["k_negative"]), int(r["n"])
            start = starts.get((r["arch"], r["dataset"]))
            if start:
                start = _share(int(start["k_negative"]), int(start["n"]))
            elif run and run["learned_negative"] == k and run["n"] == n:
                start = _share(run["start_negative"], run["n"])
            out.append({"account": account.name, "dataset": r["dataset"], "arch": r["arch"],
                        "edges": edge_mode, "learned": _share(k, n), "start": start})
    return out


def draw(table: list[dict], out: Path) -> None:
    """One panel per architecture, a line per run: hollow marker the starts, filled the learned nets, an arrow
    from one to the other."""
    from matplotlib.lines import Line2D

    from multiarg.figures import legend_under, plt, save, stamp

    archs = [a for a in ("mlp", "cnn") if any(r["arch"] == a for r in table)]
    panels = {a: sorted((r for r in table if r["arch"] == a), key=lambda r: (r["edges"], r["dataset"],
                                                                               r["account"])) for a in archs}
    fig, axes = plt.subplots(len(archs), 1, sharex=True, squeeze=False,
                             figsize=(7, 1 + 0.3 * len(table)), height_ratios=[len(panels[a]) + 1 for a in archs])
    for ax, arch in zip(axes[:, 0], archs):
        lines = panels[arch]
        ax.axvline(0.5, color="0.6", lw=0.8, ls=":")
        ax.axvline(PAPER_CURVATURE[arch][3], color="k", lw=0.9, ls="--")
        for y, r in enumerate(lines):
            color, learned, start = EDGE_COLORS.get(r["edges"], "0.4"), r["learned"], r["start"]
            if start:
                ax.plot(start["ci95"], [y + 0.18] * 2, color="0.65", lw=1)
                ax.plot(start["fraction"], y + 0.18, "o", ms=5, color=color, markerfacecolor="white")
                ax.annotate("", (learned["fraction"], y), (start["fraction"], y + 0.18),
                            arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8, "shrinkA": 3, "shrinkB": 3})
            ax.plot(learned["ci95"], [y, y], color=color, lw=1.8)
            ax.plot(learned["fraction"], y, "o", ms=5, color=color)
            ax.text(1.02, y, (f"{start['k']} → " if start else "") + f"{learned['k']}/{learned['n']}", va="center",
                    fontsize=7, transform=ax.get_yaxis_transform())
        ax.set_yticks(range(len(lines)), [r["account"].removesuffix("-cpu") for r in lines], fontsize=7)
        ax.set_ylim(len(lines) - 0.5, -0.7)
        ax.set_title(f"{arch.upper()}: learned 2-arg nets curving negatively (XOR-like); the paper's: "
                     f"{PAPER_CURVATURE[arch][0]}", fontsize=9)
    axes[-1, 0].set_xlim(-0.02, 1.02)  # a share of 0 or 1 whole
    axes[-1, 0].set_xlabel("share of nets with negative curvature (Clopper-Pearson 95% interval)", fontsize=8)
    key = [Line2D([], [], marker="o", ls="", color=c, label=f"learned, session-I edges {e}")
           for e, c in EDGE_COLORS.items()]
    key += [Line2D([], [], marker="o", ls="", color="0.4", markerfacecolor="white", label="their session-I starts"),
            Line2D([], [], color="k", lw=0.9, ls="--", label="the paper's share"),
            Line2D([], [], color="0.6", lw=0.8, ls=":", label="½")]
    fig.tight_layout()
    legend_under(axes[-1, 0], key, ncol=3)
    stamp(fig, "the committed run accounts (2-core CPUs, none at paper scale)",
          {"python bench/curvature_overview.py"})
    save(fig, out)


def main(argv=None) -> dict:
    return figure_record(__doc__, "curvature_overview", rows, draw, argv)


if __name__ == "__main__":
    main()
