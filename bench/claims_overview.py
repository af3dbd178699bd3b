"""The committed run accounts (bench/results/*/): an index of them (config and command-line overrides, session-I
edges, device, jobs, wall time, curvature counts), and the paper's claims across them (their tables/claims.csv): in
every run that tests a claim, how its result stands to the paper's and its p. Reads only the committed accounts;
measures nothing.

    python bench/claims_overview.py            # both Markdown tables
    python bench/claims_overview.py --write    # write them into FINDINGS.md between their markers

tests/test_bench.py checks that FINDINGS.md holds what this prints, so its tables cannot drift from the accounts.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from accounts import RESULTS, accounts, edges, is_demo, table_rows
from readme_block import FINDINGS, emit

MARKERS = ("<!-- claims-overview: begin (python bench/claims_overview.py --write) -->",
           "<!-- claims-overview: end -->")
INDEX_MARKERS = ("<!-- accounts-index: begin (python bench/claims_overview.py --write) -->",
                 "<!-- accounts-index: end -->")


def standing(vs_paper: str) -> str:
    """A claims table's ``vs_paper`` in short: agrees, agrees (n.s.), contradicts, not shown or n/a."""
    if not vs_paper:
        return "n/a"
    return ("not shown" if vs_paper.startswith("not shown")
            else "agrees (n.s.)" if vs_paper.startswith("agrees (not significant") else vs_paper)


def cell(row: dict) -> str:
    """``vs_paper`` in short, with p (and Holm's p where p < 0.05), and where the paper's own number lies outside
    the run's 95% interval, that number: what a reader scans the table for."""
    label = standing(row["vs_paper"])
    if label == "n/a":
        return label
    if not row["p"]:  # a standing without a test, such as no sign having changed
        return row["vs_paper"]
    label = ("agrees (n.s.; leans the other way)" if label == "agrees (n.s.)" and "other way" in row["vs_paper"]
             else f"**{label}**" if label == "contradicts" else label)
    p = float(row["p"])
    holm = f" (Holm {row['p_holm']})" if p < 0.05 else ""
    size = (f"; paper's {row['paper_value']} outside the 95% interval" if row.get("paper_in_ci95") == "outside"
            else "")
    return f"{label}, p = {row['p']}{holm}{size}"


def curvature_counts(account: Path) -> str:
    """The learned 2-arg nets' negative curvatures per architecture, after their session-I starts' where the run
    fitted those: ``MLP 21 → 17/24``."""
    parts = []
    for arch in ("mlp", "cnn"):
        rows = {r["kind"]: r for r in table_rows(account, "curvature_tests")
                if (r["arch"], r["dataset"]) == (arch, "all")}
        if "learned" in rows:
            start = f"{rows['start']['k_negative']} → " if "start" in rows else ""
            parts.append(f"{arch.upper()} {start}{rows['learned']['k_negative']}/{rows['learned']['n']}")
    return "; ".join(parts) or "—"


def overrides_of(command: str) -> list[str]:
    """The ``KEY=VALUE`` settings a Snakemake command line gives after ``--config``."""
    words = command.split()
    given = words[words.index("--config") + 1:] if "--config" in words else []
    return [w for w in given[:next((i for i, w in enumerate(given) if w.startswith("-")), len(given))] if "=" in w]


def index(results: Path = RESULTS) -> str:
    """One line per account: what ran it and what its 2-arg nets' curvature came to."""
    lines = ["| account | config | `--config` | session-I edges | device | jobs | wall time | 2-arg nets negative "
             "(starts → learned) |", "|---" * 8 + "|"]
    for account in accounts(results):
        summary = json.loads((account / "summary.json").read_text())
        run, configfile = summary["run"], summary["configfile"]
        jobs = f"{sum(run['finished'].values())}" + ("" if run["complete"] else " (incomplete)")
        overrides = " ".join(f"`{o}`" for o in overrides_of(run["command"])) or "—"
        lines.append(f"| [`{account.name}`](bench/results/{account.name}/summary.md) | `{Path(configfile).name}` | "
                     f"{overrides} | {edges(account)} | {summary['environment']['device']} | {jobs} | "
                     f"{run['elapsed_seconds'] / 60:.0f} min | "
                     f"{curvature_counts(account)} |")
    return "\n".join(lines) + "\n"


def tally(rows: list[dict]) -> str:
    """How the runs that test a claim stand to the paper, counted: ``2 agree · 1 contradicts · 5 not shown``. By p,
    as the cells (a cell gives Holm's p beside it)."""
    counts = dict.fromkeys(("agrees", "agrees (n.s.)", "contradicts", "not shown", "n/a"), 0)
    for row in rows:
        counts[standing(row["vs_paper"])] += 1
    plural = {"agrees": "agree", "agrees (n.s.)": "agree (n.s.)", "contradicts": "contradict"}
    return " · ".join(f"{n} {k if n == 1 else plural.get(k, k)}" for k, n in counts.items() if n)


def table(results: Path = RESULTS) -> str:
    """A column per account, and first the tally of them all but the demo, whose scale tests nothing."""
    runs = {account.name: {r["claim"]: r for r in table_rows(account, "claims")} for account in accounts(results)}
    claims = list(dict.fromkeys(c for rows in runs.values() for c in rows))
    tested = {name: rows for name, rows in runs.items() if not is_demo(name)}
    lines = ["| claim | runs | " + " | ".join(f"`{name}`" for name in runs) + " |", "|---" * (len(runs) + 2) + "|"]
    lines += [f"| {claim} | {tally([rows[claim] for rows in tested.values() if claim in rows]) or '—'} | "
              + " | ".join(cell(rows[claim]) if claim in rows else "—" for rows in runs.values()) + " |"
              for claim in claims]
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="write the tables into FINDINGS.md between their markers")
    write = p.parse_args(argv).write
    return emit(index(), INDEX_MARKERS, write, FINDINGS) + emit(table(), MARKERS, write, FINDINGS)


if __name__ == "__main__":
    main()
