"""How much the CPU instruction set moves a training job's numbers, and whether ``--cpu-isa`` pins them.

Reruns one workflow training job (the command its log begins with) under each combination of the variables that
bound the instruction sets of PyTorch's CPU kernels (ATen: ``ATEN_CPU_CAPABILITY``, oneDNN: ``ONEDNN_MAX_CPU_ISA``,
MKL: ``MKL_CBWR``; unset = the library's best for the CPU), and once under each ``--cpu-isa``, and records each
run's per-epoch test accuracy and loss. Same code, data and seed throughout: every distinct outcome is the
instruction set's doing::

    python bench/cpu_isa.py --job-log WORKDIR/logs/train_session2/cifar10/cnn/relu/seed0.log --workdir WORKDIR
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import device, environment, write

from multiarg.jobserver import ENV as JOB_SERVER
from multiarg.runtime import CPU_ISAS

GRID = {"ATEN_CPU_CAPABILITY": (None, "avx2", "default"),
        "ONEDNN_MAX_CPU_ISA": (None, "AVX2", "AVX", "SSE41"),
        "MKL_CBWR": (None, "AVX2", "COMPATIBLE")}


def job_command(log: Path) -> list[str]:
    """The ``python -m multiarg ... train ...`` command a job's log starts with, without a ``--cpu-isa``."""
    for line in log.read_text().splitlines():
        if "command: python -m multiarg " in line:
            argv = shlex.split(line.split("command: ", 1)[1])
            break
    else:
        raise SystemExit(f"{log}: no 'command: python -m multiarg' line")
    if "train" not in argv or "--out-dir" not in argv:
        raise SystemExit(f"{log}: not a training job (`train ... --out-dir`)")
    if "--cpu-isa" in argv:
        at = argv.index("--cpu-isa")
        del argv[at:at + 2]
    return argv


def run(argv: list[str], variables: dict, cpu_isa: str | None, workdir: Path) -> dict:
    """One run of the job into a fresh folder, with ``variables`` set (the others of :data:`GRID` unset)."""
    env = {k: v for k, v in os.environ.items() if k not in GRID and k != JOB_SERVER}
    env.update(variables)
    argv = [sys.executable, *argv[1:]]
    if cpu_isa:
        argv[3:3] = ["--cpu-isa", cpu_isa]  # after `python -m multiarg`
    with tempfile.TemporaryDirectory() as out:
        argv[argv.index("--out-dir") + 1] = out
        done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
        if done.returncode and cpu_isa and "this CPU" in done.stderr:  # lacks the set: recorded, not a failure
            return {"variables": variables, "cpu_isa": cpu_isa, "error": done.stderr.strip().splitlines()[-1]}
        if done.returncode:
            raise RuntimeError(f"{shlex.join(argv)} failed:\n{done.stderr[-3000:]}")
        with open(Path(out) / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    return {"variables": variables, "cpu_isa": cpu_isa,
            "test_acc": [float(r["test_acc"]) for r in rows], "test_loss": [float(r["test_loss"]) for r in rows],
            "seconds": sum(float(r["seconds"]) for r in rows)}


def _values(text: str) -> tuple[str, tuple[str | None, ...]]:
    name, _, values = text.partition("=")
    if name not in GRID:
        raise argparse.ArgumentTypeError(f"{name!r} is none of {sorted(GRID)}")
    return name, tuple(v or None for v in values.split(","))


def outcome(record: dict) -> tuple:
    return tuple(record["test_acc"]), tuple(record["test_loss"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job-log", type=Path, required=True, help="a training job's log from a workflow run")
    parser.add_argument("--workdir", type=Path, required=True, help="the run's folder (the job's paths are in it)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (each with the job's threads)")
    parser.add_argument("--vary", action="append", type=_values, default=None, metavar="VARIABLE=V1,V2",
                        help="vary only these of the grid's variables, over these values (empty: unset); "
                             "default: the whole grid")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    command = job_command(args.job_log)
    varied = dict(args.vary) if args.vary else GRID
    settings = [({k: v for k, v in zip(varied, values) if v}, None)
                for values in itertools.product(*varied.values())]
    settings += [({}, isa) for isa in CPU_ISAS]
    with ThreadPoolExecutor(args.parallel) as pool:
        runs = list(pool.map(lambda s: run(command, *s, args.workdir), settings))
    grid, pinned = runs[:-len(CPU_ISAS)], runs[-len(CPU_ISAS):]
    unpinned = [outcome(r) for r in grid if not r["variables"]]
    for record in (r for r in pinned if "error" not in r):  # as the grid's entry with its variables, if there
        match = [r for r in grid if r["variables"] == CPU_ISAS[record["cpu_isa"]]]
        record["equals_its_variables"] = outcome(match[0]) == outcome(record) if match else None
        record["equals_unpinned"] = outcome(record) == unpinned[0] if unpinned else None
    finals = [r["test_acc"][-1] for r in grid]
    result = {**environment(device()), "job": shlex.join(command), "parallel": args.parallel,
              "varied": varied,
              "distinct_outcomes": len({outcome(r) for r in grid}), "settings": len(grid),
              "final_test_acc_range": [min(finals), max(finals)], "grid": grid, "pinned": pinned}
    print(f"{result['distinct_outcomes']} distinct outcomes in {len(grid)} settings; final test accuracy "
          f"{min(finals):.4f}-{max(finals):.4f}; --cpu-isa: "
          + ", ".join(f"{r['cpu_isa']} {r.get('test_acc', r.get('error'))} (as its variables: "
                     f"{r.get('equals_its_variables')}, as unpinned: {r.get('equals_unpinned')})" for r in pinned))
    print(write(result, "cpu_isa", args.out))


if __name__ == "__main__":
    main()
