"""Issue 6's targets against the committed benchmark records of one device: naive (eager) vs fused vs ReLU, each
figure with its record and a verdict. Reads only JSON under bench/results/; measures nothing.

    python bench/performance.py                  # the GPU's records (cuda), as a Markdown table
    python bench/performance.py --device cpu     # this CPU's records (not a verdict on the targets: they are a GPU's)
    python bench/performance.py --readme         # write the cuda table into README.md between its markers

A target whose record is missing reads "not measured". tests/test_bench.py checks that README.md holds what this
prints for the committed records, so the README's table cannot drift from them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from multiarg.precision import ERROR_BOUNDS, TENSORS
from readme_block import emit

RESULTS = Path(__file__).resolve().parent / "results"
MARKERS = ("<!-- performance-table: begin (python bench/performance.py --readme) -->",
           "<!-- performance-table: end -->")
TFLOPS_TARGET, STEP_TARGET, MEMORY_TARGET, HOURS_TARGET, QUICK_TARGET_S = 150.0, 2.0, 2.0, 6.0, 480.0
SETTINGS = {"cifar10-cnn": "2-arg CIFAR-10 CNN", "mnist-mlp": "2-arg MNIST MLP"}


def load(results: Path, *names: str) -> tuple[dict | None, str]:
    """The first of ``names`` that exists under ``results``, and its name (the first name if none does)."""
    for name in names:
        if (results / name).exists():
            return json.loads((results / name).read_text()), name
    return None, names[0]


def verdict(value: float | None, target: float, at_least: bool = False) -> str:
    if value is None:
        return "not measured"
    return "met" if (value >= target if at_least else value <= target) else "not met"


def inner_net_row(record: dict | None, name: str) -> list[str]:
    """Goal 1: the fused inner net's best TFLOP/s at n = 2 (the 2-arg CNN's first layer), eager beside it."""
    variants = (record or {}).get("n_args", {}).get("2", {}).get("variants", {})
    rate = {v: variants[v]["tflops"] for v in variants if variants[v].get("tflops")}
    fused = {v: t for v, t in rate.items() if v.startswith("fused")}
    best = max(fused.values()) if fused else None
    shown = ", ".join(f"{v} {t:.3g}" for v, t in rate.items()) or "—"
    points = f"{record['points']:,} points" if record else "layer-1 size"
    return [f"inner net fwd+bwd, n = 2, {points} (TFLOP/s)", shown, f"fused ≥ {TFLOPS_TARGET:g}",
            verdict(best, TFLOPS_TARGET, at_least=True), name]


def precision_rows(record: dict | None, name: str) -> list[list[str]]:
    """Goal 1's error bounds: each reduced mode's kernels against float64, worst over n = 1, 2, 3 and the record's
    seeds (relative norm), against :data:`multiarg.precision.ERROR_BOUNDS`."""
    rows = []
    for mode, (output_bound, gradient_bound) in ERROR_BOUNDS.items():
        by_n = [r["kernel_vs_fp64"] for r in (record or {}).get("modes", {}).get(mode, {}).values()
                if r.get("kernel_vs_fp64")]
        output = max((e["output"]["norm"] for e in by_n), default=None)
        gradients = max((e[t]["norm"] for e in by_n for t in TENSORS[1:]), default=None)
        within = None if output is None else max(output / output_bound, gradients / gradient_bound)
        rows.append([f"fused {mode} kernels' relative error vs float64, output / gradients (worst over n = 1, 2, 3)",
                     "—" if output is None else f"{output:.2g} / {gradients:.2g}",
                     f"≤ {output_bound:g} / ≤ {gradient_bound:g}", verdict(within, 1.0), name])
    return rows


def step_rows(record: dict | None, name: str, among: str = "") -> list[list[str]]:
    """Goal 2: per setting, the fastest 2-arg variant's step time and memory against the fastest ReLU variant's, all
    from one record (measured side by side). ``among``: what the record's variants include, for the label."""
    rows = []
    for setting, label in SETTINGS.items():
        variants = (record or {}).get("settings", {}).get(setting, {}).get("variants", {})
        timed = {v: r for v, r in variants.items() if r.get("seconds")}
        relu = _fastest(timed, "relu/")
        arg2 = _fastest(timed, "arg2/")
        shown = ", ".join(f"{v} {1e3 * r['seconds']:.3g} ms" for v, r in timed.items()
                          if v.startswith(("relu/", "arg2/"))) or "—"
        time_ratio = timed[arg2]["seconds"] / timed[relu]["seconds"] if relu and arg2 else None
        memory = "saved_bytes" if relu and not timed[relu].get("peak_bytes") else "peak_bytes"
        memory_ratio = (timed[arg2][memory] / timed[relu][memory]
                        if relu and arg2 and timed[arg2].get(memory) and timed[relu].get(memory) else None)
        batch = (record or {}).get("settings", {}).get(setting, {}).get("batch", 128)
        rows.append([f"{label} training step{among}, batch {batch}: fastest arg2 ({arg2 or '—'}) / fastest ReLU "
                     f"({relu or '—'})", shown, f"time ≤ {STEP_TARGET:g}×",
                     _ratio_verdict(time_ratio, STEP_TARGET), name])
        rows.append([f"{label}{among}: {'peak memory' if memory == 'peak_bytes' else 'bytes autograd saves'} of "
                     "that arg2 variant / ReLU's", "—" if memory_ratio is None else f"×{memory_ratio:.2f}",
                     f"memory ≤ {MEMORY_TARGET:g}×", _ratio_verdict(memory_ratio, MEMORY_TARGET), name])
    return rows


def _fastest(timed: dict, prefix: str) -> str | None:
    names = [v for v in timed if v.startswith(prefix)]
    return min(names, key=lambda v: timed[v]["seconds"]) if names else None


def _ratio_verdict(ratio: float | None, target: float) -> str:
    return verdict(ratio, target) + ("" if ratio is None else f" (×{ratio:.2f})")


def estimate_row(record: dict | None, name: str) -> list[str]:
    """Goal 3: device-hours of ``snakemake all`` at paper scale (an upper bound: every job runs its maximum epochs);
    an estimate of another config is shown but judges nothing."""
    hours = record.get("hours_total") if record else None
    paper = record is not None and record.get("configfile") in (None, "config.yaml")
    shown = "—" if hours is None else f"{hours:.2f} h ({record.get('inner_kernel')}, {record.get('device')}" + (
        ")" if paper else f"; {record['configfile']}, not paper scale)")
    within = (record or {}).get("epoch_fraction_within") or {}
    if hours is not None and within.get("hours") == HOURS_TARGET:
        fraction = within["fraction"]
        shown += (f"; ≤ {HOURS_TARGET:g} h if training runs average ≤ {fraction:.2g} of their maximum epochs"
                  if fraction is not None else f"; over {HOURS_TARGET:g} h even without training")
    return ["paper-scale `snakemake all`, estimated (upper bound)", shown, f"≤ {HOURS_TARGET:g} device-hours",
            verdict(hours if paper else None, HOURS_TARGET), name]


def quick_row(summary: dict | None, name: str) -> list[str]:
    """Goal 4: the GPU quick config's whole DAG, wall time of a complete run."""
    run = (summary or {}).get("run", {})
    seconds = run.get("elapsed_seconds") if run.get("complete") and not run.get("failed") else None
    shown = "—" if not run else f"{run.get('elapsed_seconds', 0) / 60:.1f} min" + (
        "" if seconds is not None else " (incomplete or with failed jobs)")
    return ["whole DAG at GPU quick scale", shown, f"≤ {QUICK_TARGET_S / 60:g} min", verdict(seconds, QUICK_TARGET_S),
            name]


def table(device: str, results: Path = RESULTS) -> str:
    found = []

    def get(*names: str) -> tuple[dict | None, str]:
        record, name = load(results, *names)
        found.append(record)
        return record, name

    rows = [inner_net_row(*get(f"inner_net-{device}.json")),
            *precision_rows(*get(f"precision-{device}.json", f"precision-{device}-interpreted.json")),
            *step_rows(*get(f"train_step-{device}.json"))]
    compiled = get(f"train_step-compile-{device}.json")
    if compiled[0] or device == "cuda":  # the GPU session measures it; elsewhere only if someone did
        rows += step_rows(*compiled, among=" (compiled and CUDA-graph variants too)")
    rows += [estimate_row(*get(f"estimate-{device}-fused-tf32.json", f"estimate-{device}.json")),
             quick_row(*get(f"quick-{device}/summary.json"))]
    lines = ["| target | measured | goal | verdict | record (bench/results/) |", "|---|---|---|---|---|"]
    text = "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
    # the issue's targets are an H100's; say which device the records come from (a summary keeps it in environment)
    made_on = sorted({(r.get("environment") or r).get("device") for r in found if r} - {None})
    return text + (f"\nRecords made on: {', '.join(made_on)}.\n" if made_on else "")


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="whose records: cuda or cpu (the files' suffix)")
    p.add_argument("--readme", action="store_true", help="write the table into README.md between its markers")
    args = p.parse_args(argv)
    return emit(table(args.device), MARKERS, args.readme)


if __name__ == "__main__":
    main()
