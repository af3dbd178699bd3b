"""What every benchmark shares: timing with the device synchronised, the record of where it ran, the JSON."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seconds_per_call(fn: Callable[[], object], repeats: int, dev: torch.device) -> float:
    """Mean wall time of ``fn()`` over ``repeats`` calls, the device's queue drained before and after."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def best_of(variants: dict[str, Callable[[], object]], repeats: int, rounds: int, dev: torch.device
            ) -> dict[str, float]:
    """Best mean time of each variant over ``rounds`` rounds that alternate between the variants, so that
    a noisy machine slows them alike and their ratios stay comparable."""
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], seconds_per_call(fn, repeats, dev))
    return best


def environment(dev: torch.device) -> dict:
    """Where and with what a benchmark ran, and the command that re-runs it."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    return {"command": " ".join(["python", *sys.argv]), "device": name, "torch": torch.__version__,
            "triton": triton_version, "cuda": torch.version.cuda if dev.type == "cuda" else None,
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}


def write(result: dict, name: str, out: str | None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
