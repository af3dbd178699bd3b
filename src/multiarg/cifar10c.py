"""Pipeline steps for CIFAR-10-C (paper Sec. 4.5, Fig. 9): obtain the benchmark for the test images the runs
are scored on, evaluate each session-III network on all 75 sets, and summarise CE / mCE against ReLU."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import data
from .corruptions import (CATEGORIES, CORRUPTIONS, CORRUPTIONS_BY_CATEGORY, MANIFEST, check_scored_images,
                          load_cifar10c, obtain_cifar10c)
from .io import write_json
from .paths import parse_run
from .robustness import evaluate_corrupted, seed_summary
from .runtime import resolve_device
from .tables import difference_cells, welch_difference, write_table

log = logging.getLogger(__name__)
PAPER = "paper (CNN, 2-arg vs ReLU): mCE 91.3%, relative mCE 99.5%"
VERSUS_RELU = {"mce": ("mce_vs_relu_ci95", "mce_vs_relu_p", "mce_verdict"),  # metric: its columns on the mCE row
               "relative_mce": ("relative_mce_vs_relu_ci95", "relative_mce_vs_relu_p", "relative_mce_verdict")}


def prepare(data_path: Path, out_dir: Path, *, seed: int, source: str, test_limit: int | None,
            split_seed: int) -> dict:
    """CIFAR-10-C for exactly the test images runs are scored on; ``source``: auto, generate or download."""
    prepared = data.load_prepared(data_path)
    x, _ = data.test_subset(prepared, test_limit, split_seed)
    # The published benchmark is the original, full test set; a subset or the JPEG copy needs generating.
    original = prepared["exact"] and test_limit is None
    if source == "download" and not original:
        raise data.DataError("robustness.cifar10c.source=download needs the exact CIFAR-10 test set, all of it "
                             f"(this data: source {prepared['source']!r}, test_limit {test_limit})")
    online = {"auto": None if original else False, "generate": False, "download": True}[source]
    return obtain_cifar10c(x, out_dir, seed, online=online)


def evaluate_run(model_path: Path, data_path: Path, c_dir: Path, out: Path, *, batch_size: int, device: str,
                 test_limit: int | None, split_seed: int) -> dict:
    """Clean and corrupted top-1 errors of one network, written as JSON."""
    from .sessions import load_model

    model, record = load_model(model_path)
    dev = resolve_device(device)
    model.to(dev)
    x, y = data.test_subset(data.load_prepared(data_path), test_limit, split_seed)
    manifest = json.loads((Path(c_dir) / MANIFEST).read_text())
    if manifest["n"] != len(y):
        raise data.DataError(f"{c_dir} holds {manifest['n']} images per set but the runs are scored on {len(y)}; "
                             "delete it and re-run the CIFAR-10-C step")
    check_scored_images(c_dir, x, y)
    result = {"model": str(model_path), "source": manifest["source"], "n": len(y), "data_note": record["data_note"],
              "clean": evaluate_corrupted(model, x, y, batch_size, dev), "corrupted": {}}
    for name in CORRUPTIONS:
        result["corrupted"][name] = {s: evaluate_corrupted(model, load_cifar10c(c_dir, name, s), y, batch_size, dev)
                                     for s in manifest["severities"]}
        log.info("%s: errors %s", name, result["corrupted"][name])
    write_json(result, out)
    return result


def summarise(paths: list[str], reference: str = "relu") -> dict[tuple[str, str], dict]:
    """:func:`seed_summary` per (architecture, activation), each against the reference network of its own
    architecture (reference included, as its own check), from the runs' JSON files."""
    runs = defaultdict(list)
    for p in paths:
        info = parse_run(p)
        runs[info["arch"], info["activation"]].append(json.loads(Path(p).read_text()))
    summary = {}
    for (arch, act), r in sorted(runs.items()):
        if (arch, reference) not in runs:
            raise ValueError(f"the CE reference {reference!r} has no evaluated {arch} runs")
        summary[arch, act] = {**seed_summary(r, runs[arch, reference]),
                              "clean_error": float(np.mean([x["clean"] for x in r])),
                              "source": r[0]["source"], "data_note": r[0]["data_note"]}
    return summary


def _pct(stat: dict) -> tuple[str, str]:
    return f"{100 * stat['mean']:.1f}", f"{100 * stat['sd']:.1f}"


def write_summary_table(paths: list[str], out: str, scale: str) -> list[dict]:
    summary = summarise(paths)
    rows = []
    for (arch, act), s in summary.items():
        versus = {}
        for metric, columns in VERSUS_RELU.items():
            name = metric.replace("_", " ").replace("mce", "mCE")
            cells = ("", "", "") if act == "relu" else difference_cells(
                welch_difference(s[metric]["values"], summary[arch, "relu"][metric]["values"]),
                f"higher {name} than ReLU", f"lower {name} than ReLU", digits=1, scale=100)
            versus.update(zip(columns, cells))
        for name in list(CORRUPTIONS) + ["mean"]:
            ce = s["mce"] if name == "mean" else s["ce"][name]
            rel = s["relative_mce"] if name == "mean" else s["relative_ce"][name]
            rows.append({"arch": arch, "activation": act, "corruption": "mCE" if name == "mean" else name,
                         "category": "" if name == "mean" else CATEGORIES[name], "ce_pct": _pct(ce)[0],
                         "ce_sd": _pct(ce)[1], "relative_ce_pct": _pct(rel)[0], "relative_ce_sd": _pct(rel)[1],
                         "clean_error_pct": f"{100 * s['clean_error']:.1f}", "seeds": s["n_seeds"],
                         "benchmark": s["source"], **(versus if name == "mean" else dict.fromkeys(versus, ""))})
    first = next(iter(summary.values()))
    notes = ["CE_c = sum_s E_sc / sum_s E_sc(ReLU); relative CE_c = sum_s (E_sc - E_clean) / sum_s (E_sc(ReLU) - "
             "E_clean(ReLU)); mCE = mean over the 15 corruptions. The reference is the ReLU network's error of the "
             "same architecture, averaged over its seeds; SD is over the model's seeds. NaN: undefined where ReLU's "
             "corrupted error does not exceed its clean error (the relative mCE then averages the other "
             "corruptions). mce_vs_relu: the model's mCE minus ReLU's (points of %), Welch's 95% interval and p over "
             "the seeds, on the mCE row, with its verdict; relative_mce_vs_relu likewise for the relative mCE, "
             "whose ReLU seeds scatter about 100%.",
             "Benchmark: generated from the scored test images with the CIFAR-10-C severity constants, not the "
             "published files." if first["source"] == "generated" else f"Benchmark: {first['source']}.",
             first["data_note"], PAPER]
    write_table(rows, out, f"CIFAR-10-C corruption errors ({scale})", notes=[n for n in notes if n])
    return rows


def _ce_panel(ax, summary: dict[str, dict], colors: dict, arch: str) -> None:
    """CE bars of one architecture's models, by corruption and category, with their mCE and relative mCE."""
    models = [a for a in colors if a in summary]
    width = 0.8 / len(models)
    x = np.arange(len(CORRUPTIONS))
    for i, act in enumerate(models):
        s = summary[act]
        mean = [100 * s["ce"][c]["mean"] for c in CORRUPTIONS]
        sd = [100 * s["ce"][c]["sd"] for c in CORRUPTIONS]
        relative = 100 * s["relative_mce"]["mean"]  # NaN where ReLU's corrupted error never exceeds its clean error
        ax.bar(x + (i - (len(models) - 1) / 2) * width, mean, width, yerr=sd, color=colors[act], capsize=1.5,
               label=f"{act}: mCE {100 * s['mce']['mean']:.1f}%, rel. mCE "
                     f"{f'{relative:.1f}%' if np.isfinite(relative) else 'n/a'} (n={s['n_seeds']})")
        ax.axhline(100 * s["mce"]["mean"], color=colors[act], ls="--", lw=0.8)
        ax.axhline(relative, color=colors[act], ls=":", lw=0.8)
    start = 0
    for category, names in CORRUPTIONS_BY_CATEGORY.items():
        ax.axvline(start + len(names) - 0.5, color="0.8", lw=0.6)
        ax.annotate(category, (start + (len(names) - 1) / 2, 1.01), xycoords=("data", "axes fraction"), ha="center",
                    fontsize=8)
        start += len(names)
    # relative mCE of barely trained (demo) models can be far off-scale; its value stays in the legend
    top = max(100 * (s["ce"][c]["mean"] + s["ce"][c]["sd"]) for s in summary.values() for c in CORRUPTIONS)
    ax.set_ylim(0, 1.15 * max(top, 100))
    ax.set_xticks(x, [c.replace("_", " ") for c in CORRUPTIONS], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel(f"{arch.upper()}: corruption error CE (% of ReLU)")
    # beside the panel: inside, it would hide the bars of the last corruptions
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1), title="dashed: mCE, dotted: relative mCE",
              title_fontsize=7)


def fig9(args) -> None:
    """CE per corruption, grouped by category, for each model against ReLU, with mCE and relative mCE; one
    panel per architecture."""
    from .figures import COLORS as colors
    from .figures import plt, save, stamp

    summary = summarise(args.errors)
    archs = sorted({arch for arch, _ in summary})
    fig, axes = plt.subplots(len(archs), 1, figsize=(11, 4 * len(archs)), squeeze=False)
    for ax, arch in zip(axes[:, 0], archs):
        _ce_panel(ax, {act: s for (a, act), s in summary.items() if a == arch}, colors, arch)
    fig.tight_layout()
    first = next(iter(summary.values()))
    stamp(fig, args.scale, {f"CIFAR-10-C {first['source']}", first["data_note"]})
    save(fig, args.out)
