"""The paper's claims across the committed run accounts (bench/results/*/tables/claims.csv): in every run that tests a
claim, how its result stands to the paper's and its p. Reads only the committed tables; measures nothing.

    python bench/claims_overview.py            # the Markdown table
    python bench/claims_overview.py --write    # write it into FINDINGS.md between its markers

tests/test_bench.py checks that FINDINGS.md holds what this prints, so its overview cannot drift from the accounts.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from readme_block import FINDINGS, emit

RESULTS = Path(__file__).resolve().parent / "results"
MARKERS = ("<!-- claims-overview: begin (python bench/claims_overview.py --write) -->",
           "<!-- claims-overview: end -->")


def accounts(results: Path = RESULTS) -> list[Path]:
    """Accounts with a claims table, the demo last (its scale tests nothing)."""
    found = [p.parent.parent for p in results.glob("*/tables/claims.csv")]
    return sorted(found, key=lambda p: (p.name.startswith("demo"), not p.name.startswith("mnist"), p.name))


def cell(row: dict) -> str:
    """``vs_paper`` in short, with p (and Holm's p where p < 0.05), and where the paper's own number lies outside
    the run's 95% interval, that number: what a reader scans the table for."""
    vs = row["vs_paper"]
    if not vs:
        return "n/a"
    label = ("agrees (n.s." + ("; leans the other way" if "other way" in vs else "") + ")"
             if vs.startswith("agrees (not significant") else "not shown" if vs.startswith("not shown") else vs)
    label = f"**{label}**" if label == "contradicts" else label
    p = float(row["p"])
    holm = f" (Holm {row['p_holm']})" if p < 0.05 else ""
    size = (f"; paper's {row['paper_value']} outside the 95% interval" if row.get("paper_in_ci95") == "outside"
            else "")
    return f"{label}, p = {row['p']}{holm}{size}"


def table(results: Path = RESULTS) -> str:
    runs = {}
    for account in accounts(results):
        with open(account / "tables" / "claims.csv") as fh:
            runs[account.name] = {r["claim"]: r for r in csv.DictReader(fh)}
    claims = list(dict.fromkeys(c for rows in runs.values() for c in rows))
    lines = ["| claim | " + " | ".join(f"`{name}`" for name in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    lines += [f"| {claim} | " + " | ".join(cell(rows[claim]) if claim in rows else "—" for rows in runs.values())
              + " |" for claim in claims]
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="write the table into FINDINGS.md between its markers")
    return emit(table(), MARKERS, p.parse_args(argv).write, FINDINGS)


if __name__ == "__main__":
    main()
