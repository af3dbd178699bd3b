"""A workflow job as a fresh ``python -m multiarg`` process against the same job forked from a process that has
already imported everything (PyTorch, torch._dynamo, NumPy, SciPy, Matplotlib, every multiarg module), side by side
in alternating rounds; the two outputs must be equal. It measures what a fork server for the workflow's jobs would
save: a job's start-up is mostly imports (README, *Job start-up*).

    python bench/fork_start.py                 # session I of the tiny config; bench/results/fork_start-<device>.json
    python bench/fork_start.py --rounds 3 --configfile workflow/configs/demo.yaml
"""
from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

FRESH_RNG = torch.get_rng_state()  # what a fresh interpreter starts from; a forked job is given it back

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401  (the first optimizer imports it: a second of a training job's start)
from common import ROOT, device, environment, load_config, write  # noqa: E402

import multiarg  # noqa: E402

for _module in pkgutil.iter_modules(multiarg.__path__):
    if _module.name != "__main__":
        importlib.import_module(f"multiarg.{_module.name}")
PRELOAD_S = time.perf_counter() - START


def job_args(config: dict, out: Path) -> list[str]:
    """The workflow's session-I job for arg2, seed 0, with the config's settings (as the pretrain_inner rule)."""
    options = {**config["pretrain"], "inner_hidden": config["model"]["inner_hidden"],
               "inner_depth": config["model"]["inner_depth"]}
    pairs = [(f"--{k.replace('_', '-')}", str(v).lower() if isinstance(v, bool) else str(v)) for k, v in options.items()]
    return ["--threads", "1", "pretrain", "--activation", "arg2", "--seed", "0", "--out", str(out),
            *[x for pair in pairs for x in pair]]


def fresh(args: list[str], log: Path) -> float:
    t = time.perf_counter()
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-m", "multiarg", *args], check=True, stdout=fh, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t


def forked(args: list[str], log: Path) -> float:
    from multiarg.cli import main

    t = time.perf_counter()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            torch.set_rng_state(FRESH_RNG)
            main(args)
            code = 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # the parent's atexit handlers and collector are not the job's
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"forked job failed ({status}); see {log}")
    return time.perf_counter() - t


def tensors(path: Path) -> dict[str, torch.Tensor]:
    def walk(obj, prefix):
        if isinstance(obj, dict):
            for key, value in obj.items():
                yield from walk(value, f"{prefix}/{key}")
        elif isinstance(obj, torch.Tensor):
            yield prefix, obj

    return dict(walk(torch.load(path, weights_only=False), ""))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=str(ROOT / "tests" / "configs" / "tiny.yaml"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    config, dev = load_config(args.configfile), device()
    gc.freeze()  # as a server would: the imported objects stay shared with every forked job
    times: dict[str, list[float]] = {"fresh": [], "forked": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for way, run in (("fresh", fresh), ("forked", forked)):
                times[way].append(run(job_args(config, work / f"{way}{r}.pt"), work / f"{way}{r}.log"))
        a, b = tensors(work / "fresh0.pt"), tensors(work / "forked0.pt")
        equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    median = {way: statistics.median(t) for way, t in times.items()}
    result = {**environment(dev), "configfile": args.configfile, "job": "pretrain_inner arg2 seed 0",
              "rounds": args.rounds, "preload_s": PRELOAD_S, "native_threads_after_preload":
              len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
              "seconds": times, "median_s": median, "saved_s": median["fresh"] - median["forked"],
              "fresh_over_forked": median["fresh"] / median["forked"], "outputs_equal": equal}
    print(f"session-I job: {median['fresh']:.2f} s fresh, {median['forked']:.2f} s forked "
          f"(preloading took {PRELOAD_S:.1f} s once); outputs equal: {equal}")
    print("wrote", write(result, f"fork_start-{dev.type}", args.out))
    return result


if __name__ == "__main__":
    main()
