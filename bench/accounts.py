"""The committed run accounts (bench/results/*/): finding them, reading their tables and config, and the record of
a figure drawn from them, which measures nothing."""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from multiarg.analysis import SIGN_NAMES, is_ridge
from multiarg.config import load_config
from multiarg.io import atomic_path, write_record

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# fits.csv's sign column as -1, 0, +1: a ridge (analysis.ridge_tolerance) is a tie, as a flat fit is
SIGN_VALUES = {**{name: value for value, name in SIGN_NAMES.items()}, "ridge": 0}


def fit_sign(fit: dict, ridge_tolerance: float = 0.0) -> int:
    """A fits-table row's curvature sign, -1, 0 or +1, with the ridges under ``ridge_tolerance`` tied
    (``analysis.ridge_tolerance``; by |curvature_normalised|, 3 decimals). A row the account's own tolerance tied
    votes with the sign of its curvature (4 significant digits) where ``ridge_tolerance`` does not tie it."""
    if fit["sign"] == "flat" or is_ridge(float(fit["curvature_normalised"]), ridge_tolerance):
        return 0
    return int(np.sign(float(fit["curvature"]))) if fit["sign"] == "ridge" else SIGN_VALUES[fit["sign"]]


def compact_png(source: Path, target: Path) -> None:
    """``source`` as a 256-colour palette PNG at ``target``, about a third of a figure's size: a device call sends the
    whole working tree, 64 MiB at most with what it carries, and full-colour account figures were most of it. A
    plot's lines and text keep their colours; a colour map's gradient takes the nearest of 256. A palette PNG is
    copied as it is."""
    from PIL import Image

    with Image.open(source) as image:
        compact = None if image.mode == "P" else image.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    if compact is None:
        if Path(source).resolve() != Path(target).resolve():
            shutil.copyfile(source, target)
        return
    with atomic_path(target) as tmp:
        compact.save(tmp, "PNG", optimize=True)


def is_demo(name: str) -> bool:
    """Whether an account is the demo's, whose scale tests nothing."""
    return name.startswith("demo")


def accounts(results: Path = RESULTS) -> list[Path]:
    """Accounts with a claims table, the demo last."""
    found = [p.parent.parent for p in results.glob("*/tables/claims.csv")]
    return sorted(found, key=lambda p: (is_demo(p.name), not p.name.startswith("mnist"), p.name))


def tested_accounts(results: Path = RESULTS) -> list[Path]:
    """:func:`accounts` without the demo."""
    return [account for account in accounts(results) if not is_demo(account.name)]


def table_rows(account: Path, table_name: str) -> list[dict]:
    with open(account / "tables" / f"{table_name}.csv") as fh:
        return list(csv.DictReader(fh))


def setting_fits(results: Path = RESULTS):
    """Every account's fits table (the demo's left out: its scale tests nothing) by setting: ``(account, dataset,
    arch, rows)``."""
    for account in tested_accounts(results):
        fits = table_rows(account, "fits")
        for dataset, arch in sorted({(r["dataset"], r["arch"]) for r in fits}):
            yield account, dataset, arch, [r for r in fits if (r["dataset"], r["arch"]) == (dataset, arch)]


def edges(account: Path) -> str:
    """The session-I blur's edge mode of the account's config as the repository resolves it now (each config whose
    account predates the change of default pins its own)."""
    configfile = json.loads((account / "summary.json").read_text())["configfile"]
    return load_config(ROOT / "config.yaml", ROOT / configfile)["pretrain"]["boundary"]


def figure_record(doc: str, name: str, rows: Callable[[Path], list[dict]],
                  draw: Callable[[list[dict], Path], None], argv=None) -> dict:
    """The command line of an overview figure's script (its docstring ``doc``, ``bench/{name}.py``):
    ``rows(results)`` into ``--out`` (JSON, with the command) and ``draw`` of them into a PDF and PNG beside it."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="the folder of run accounts")
    p.add_argument("--out", type=Path, default=RESULTS / f"{name}.json",
                   help="the JSON; the figure goes beside it (.pdf and .png)")
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    record = {"command": " ".join(["python", f"bench/{name}.py", *given]), "rows": rows(args.results)}
    if not record["rows"]:
        raise SystemExit(f"nothing to draw: no run account under {args.results} has the tables {name} reads")
    write_record(record, args.out)
    draw(record["rows"], args.out.with_suffix(".pdf"))
    return record
