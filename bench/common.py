"""What every benchmark shares: timing with the device synchronised, the record of where it ran, the JSON."""
from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import time
from argparse import Namespace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import torch

from multiarg.cli import model_config
from multiarg.config import load_config as load_config_files
from multiarg.io import write_record
from multiarg.models import OuterNet
from multiarg.runtime import cpu_model, tf32_ops

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def load_config(configfile: str | None = None) -> dict:
    """``config.yaml``, with ``configfile``'s keys merged over it as Snakemake merges them."""
    return load_config_files(ROOT / "config.yaml", *([configfile] if configfile else []))


def outer_options(config: dict, arch: str, activation: str) -> dict:
    """The model options (as the CLI takes them) of the network the workflow trains for ``arch`` x ``activation``."""
    m, matching = config["model"], config["matching"]
    return dict(arch=arch, widths=m[f"{arch}_widths"], dropout=m["dropout"], layernorm=m["layernorm"],
                inner_hidden=m["inner_hidden"], inner_depth=m["inner_depth"], kernel_size=m["kernel_size"],
                padding=m["padding"], pool_after=m["pool_after"],
                match_to=matching["reference"] if activation in matching["matched"] else None,
                widening=matching["widening"])


def build_outer_net(options: dict, dataset: str, activation: str, mean=None, std=None) -> OuterNet:
    """The network of the CLI's model ``options``, normalising its input by a prepared dataset's ``mean`` and ``std``
    where given."""
    return OuterNet(model_config(Namespace(**options), dataset, activation), mean, std)


def outer_net(config: dict, dataset: str, arch: str, activation: str) -> OuterNet:
    """The network the workflow trains for ``dataset`` x ``arch`` x ``activation`` under ``config``."""
    return build_outer_net(outer_options(config, arch, activation), dataset, activation)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronizer(dev: torch.device) -> Callable[[], None]:
    """What drains ``dev``'s queue, so that a host clock read after it counts the device's work."""
    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def seconds_per_call(fn: Callable[[], object], repeats: int, dev: torch.device) -> float:
    """Mean wall time of ``fn()`` over ``repeats`` calls, the device's queue drained before and after."""
    sync = synchronizer(dev)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def attempt(calls: dict, times: int = 1) -> tuple[dict, dict[str, str]]:
    """Call each of ``calls`` ``times`` times. Returns the last result of each that ran and the error of each that
    failed: on a lent GPU, one kernel or compiler that cannot run must not cost the other measurements."""
    results, failed = {}, {}
    for name, fn in calls.items():
        try:
            for _ in range(times):
                results[name] = fn()
        except Exception as err:
            failed[name] = f"{type(err).__name__}: {err}"[:500]
    return results, failed


def warm_up(variants: dict, times: int = 1, seconds: dict | None = None) -> dict[str, str]:
    """Run every variant ``times`` times (compilation, autotuning, the allocator's pools) and drop, in place,
    those that fail. Returns ``{name: error}``; ``seconds``, if given, gets each variant's wall time of it (on a
    GPU mostly compilation: whether :func:`compile_ahead` left the kernels in the cache)."""
    seconds = {} if seconds is None else seconds
    failed = {}
    for name, fn in variants.items():
        start = time.perf_counter()
        failed.update(attempt({name: fn}, times)[1])
        seconds[name] = time.perf_counter() - start
    for name in failed:
        del variants[name]
    return {str(name): error for name, error in failed.items()}


def _main_script_last() -> None:
    """Pickle names an object that has no ``__module__`` (``torch.contiguous_format``) by the first module in
    ``sys.modules`` that holds it, and Inductor's cache keys pickle such objects. A spawned process holds the main
    script (which imports torch) as ``__mp_main__`` ahead of torch's own modules, where its parent holds it after
    them, so the graphs it compiled would miss the parent's cache. Last in both, it names nothing in either."""
    if "__mp_main__" in sys.modules:
        sys.modules["__mp_main__"] = sys.modules.pop("__mp_main__")


def _run_job(job: Callable[[], object]) -> None:
    job()
    if torch.cuda.is_initialized():  # an asynchronous launch error is reported here, as this job's failure
        torch.cuda.synchronize()


def compile_ahead(jobs: dict[str, Callable[[], object]], workers: int | None = None) -> dict:
    """Run each job once, side by side in fresh processes, before anything is timed.

    Triton compiles a kernel on one CPU core, and a benchmark launches dozens: jobs that each launch one variant
    the way the timed process will (the same shapes, hence the same specialisations) fill Triton's on-disk cache
    at once, and the timed process's warm-up loads the kernels from there. The jobs must pickle (module-level
    functions and their arguments). A job that fails costs only its time: the warm-up runs that variant again and
    records why it fails. Prints a line and returns the wall time, the jobs, the workers and each failed job's error.
    """
    start, failed = time.perf_counter(), {}
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    _main_script_last()
    # spawn: a forked child of a process that has touched CUDA cannot use it
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_main_script_last) as pool:
        futures = {name: pool.submit(_run_job, job) for name, job in jobs.items()}
        for name, future in futures.items():
            try:
                future.result()
            except Exception as err:  # recorded; the warm-up meets it again
                failed[name] = f"{type(err).__name__}: {err}"[:500]
    seconds = time.perf_counter() - start
    print(f"compiled ahead: {len(jobs)} variants on {workers} processes in {seconds:.1f} s, {len(failed)} failed")
    return {"seconds": seconds, "jobs": sorted(jobs), "workers": workers, "failed": failed}


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
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_model()
    return {"command": " ".join(["python", *sys.argv]), "device": name, "torch": torch.__version__,
            "triton": triton_version, "cuda": torch.version.cuda if dev.type == "cuda" else None,
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "triton_interpreter": os.environ.get("TRITON_INTERPRET") == "1", "tf32": tf32_ops()}


def write(result: dict, name: str, out: str | None) -> Path:
    """Write ``result`` as strict JSON to ``out``, or by default to ``bench/results/NAME.json``."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(result, path)  # atomic: a cut-off benchmark leaves no half record
    return path
