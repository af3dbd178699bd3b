"""Throughput of several training processes sharing one device: does running small models side by side fill a
GPU, and does CUDA's Multi-Process Service (MPS) help them share it?

    python bench/concurrency.py                          # CUDA: MNIST MLP and CIFAR-10 CNN, ReLU and fused arg2
    python bench/concurrency.py --mps off,on             # and again under MPS (needs nvidia-cuda-mps-control)
    python bench/concurrency.py --verdict FILE           # exit 0 if FILE measured MPS faster for every variant
    python bench/concurrency.py --processes 1,2 --batch 8 --seconds 0.2   # a look on a CPU (one thread a worker)

The workflow runs jobs this way: Snakemake's ``gpu`` resource (``--resources gpu=N``) lets N jobs, each its own
process with its data on the GPU, share one device. Here the largest count of worker processes start once per MPS
setting and each builds every variant (as ``bench/train_step.py`` builds it: the workflow's network, a batch
resident on the device, Adam) and warms it up. Then for each variant and each count P, P workers run the same
number of training steps at once, and the throughput of them all (steps over the span from the first start to the
last end) is set against one worker's; the counts alternate over rounds and the best of each is kept. Writes
``bench/results/concurrency-<device>.json`` with the device, versions and the command.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from common import device, environment, seconds_per_call, synchronizer, write
from train_step import SETTINGS, Variant, build, variant_names

from multiarg.data import SHAPES

READY_SECONDS = 300  # a worker's start: imports, CUDA's context, building and warming every variant (Triton compiles)


def worker(names: list[str], batch: int, threads: int) -> None:
    """One worker process: build ``names`` (``setting:activation``, each with its :func:`fastest` kernel), then
    answer the controller's commands on stdin, one JSON line each, with one JSON line on the real stdout (anything
    else printed goes to stderr)."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    dev = device()
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    variants, solo, kernels, failed = {}, {}, {}, {}
    for name in names:
        setting, activation = name.split(":")
        try:
            torch.manual_seed(0)
            inputs = torch.rand(batch, *SHAPES[SETTINGS[setting][0]][0], device=dev)
            labels = torch.randint(0, 10, (batch,), device=dev)
            kernels[name] = fastest(activation, dev)
            v = Variant(kernels[name], build(setting, activation, dev), inputs, labels)
            for _ in range(3):
                v()
            solo[name] = seconds_per_call(v, 5, dev)
            variants[name] = v
        except Exception as err:
            failed[name] = f"{type(err).__name__}: {err}"[:500]
    replies.write(json.dumps({"solo_seconds": solo, "kernels": kernels, "failed": failed,
                              "environment": environment(dev)}) + "\n")
    sync = synchronizer(dev)
    for line in sys.stdin:
        command = json.loads(line)
        v = variants[command["variant"]]
        sync()
        start = time.monotonic()  # system-wide on Linux: spans of different workers compare
        for _ in range(command["steps"]):
            loss, _ = v()
        sync()
        replies.write(json.dumps({"start": start, "end": time.monotonic(), "loss": float(loss)}) + "\n")


class Workers:
    """``count`` worker processes, each with every variant of ``names`` built and warmed up."""

    def __init__(self, count: int, names: list[str], batch: int, threads: int, env: dict[str, str]):
        command = [sys.executable, __file__, "--worker", "--names", ",".join(names), "--batch", str(batch),
                   "--threads", str(threads)]
        self.procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env={**os.environ, **env}) for _ in range(count)]
        try:
            ready = [self.reply(p, READY_SECONDS) for p in self.procs]
        except BaseException:
            self.close()
            raise
        self.failed = {name: err for r in ready for name, err in r["failed"].items()}
        self.solo = {name: max(r["solo_seconds"][name] for r in ready) for name in names if name not in self.failed}
        self.kernels, self.environment = ready[0]["kernels"], ready[0]["environment"]

    @staticmethod
    def reply(proc: subprocess.Popen, timeout: float) -> dict:
        if not select.select([proc.stdout], [], [], timeout)[0]:
            raise TimeoutError(f"a worker gave no answer in {timeout:.0f} s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a worker ended with status {proc.wait()}")
        return json.loads(line)

    def burst(self, name: str, count: int, steps: int) -> dict:
        """``count`` workers run ``steps`` steps of ``name`` at once."""
        for p in self.procs[:count]:
            p.stdin.write(json.dumps({"variant": name, "steps": steps}) + "\n")
            p.stdin.flush()
        spans = [self.reply(p, 60 + 20 * count * steps * self.solo[name]) for p in self.procs[:count]]
        wall = max(s["end"] for s in spans) - min(s["start"] for s in spans)
        return {"steps_per_second": count * steps / wall, "wall_seconds": wall,
                "step_seconds": sum(s["end"] - s["start"] for s in spans) / (count * steps),
                "finite_loss": all(math.isfinite(s["loss"]) for s in spans)}

    def close(self):
        """End every worker: its stdin closed, it leaves its command loop; one that does not is killed."""
        for p in self.procs:
            p.stdin.close()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def measure(names: list[str], counts: list[int], batch: int, seconds: float, rounds: int, threads: int,
            env: dict[str, str]) -> dict:
    """Per variant and count, the best burst over ``rounds`` (counts alternating), each worker running about
    ``seconds`` of its variant's solo step time."""
    workers = Workers(max(counts), names, batch, threads, env)
    try:
        rows = {}
        for name, solo in workers.solo.items():
            steps = max(3, round(seconds / solo))
            best = {}
            for _ in range(rounds):
                for count in counts:
                    b = workers.burst(name, count, steps)
                    if count not in best or b["steps_per_second"] > best[count]["steps_per_second"]:
                        best[count] = b
            one = best[min(counts)]["steps_per_second"] / min(counts)
            rows[name] = {"variant": workers.kernels[name], "solo_step_seconds": solo, "steps_per_burst": steps,
                          "processes": {str(c): {**b, "vs_one": b["steps_per_second"] / one}
                                        for c, b in best.items()}}
        return {"variants": rows, "failed": workers.failed, "environment": workers.environment}
    finally:
        workers.close()


@contextmanager
def mps_daemon():
    """A private MPS control daemon for the duration; yields the environment its clients need."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise FileNotFoundError("nvidia-cuda-mps-control is not on PATH")
    folder = tempfile.mkdtemp(prefix="mps-")
    env = {"CUDA_MPS_PIPE_DIRECTORY": folder, "CUDA_MPS_LOG_DIRECTORY": folder}
    subprocess.run([control, "-d"], env={**os.environ, **env}, check=True, timeout=30)
    try:
        yield env
    finally:
        subprocess.run([control], input="quit\n", text=True, env={**os.environ, **env}, timeout=30)


def verdict(record: dict, margin: float = 1.1) -> tuple[bool, list[str]]:
    """Whether MPS ran every variant measured both ways at least ``margin`` times as fast, at the largest count
    of processes both measured; with one line of evidence per variant."""
    off, on = (record["mps"].get(k, {}).get("variants", {}) for k in ("off", "on"))
    lines, faster = [], []
    for name in sorted(off.keys() & on.keys()):
        count = max(off[name]["processes"].keys() & on[name]["processes"].keys(), key=int)
        ratio = on[name]["processes"][count]["steps_per_second"] / off[name]["processes"][count]["steps_per_second"]
        faster.append(ratio >= margin)
        lines.append(f"{name}: {count} processes, MPS x{ratio:.2f}")
    return bool(faster) and all(faster), lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {list(SETTINGS)}")
    p.add_argument("--activations", default="relu,arg2",
                   help="each runs as its fastest kernel here (the fused TF32 one on a GPU for learned ones)")
    p.add_argument("--processes", default="1,4,8", help="comma-separated counts of processes")
    p.add_argument("--mps", default="off", help="comma-separated: off, on (on: under an MPS daemon of its own)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=0.5, help="a burst's length, in one worker's solo step time")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker on a CPU")
    p.add_argument("--verdict", metavar="FILE", help="only read FILE and exit 0 if MPS was faster")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--names", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.names.split(","), args.batch, args.threads)
        sys.exit(0)
    if args.verdict:
        record = Path(args.verdict)
        chosen, lines = verdict(json.loads(record.read_text())) if record.exists() else (False, [f"no {record}"])
        print("\n".join(lines + [f"MPS {'on' if chosen else 'off'}"]))
        sys.exit(0 if chosen else 1)
    # a stage's timeout ends this with SIGTERM: unwind, so that the workers and a daemon of ours end with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    dev = device()  # no CUDA context here, ever: the workers make their own, under MPS or not, and say where they ran
    names = [f"{setting}:{activation}" for setting in args.settings.split(",")
             for activation in args.activations.split(",")]
    counts = sorted({int(c) for c in args.processes.split(",")})
    result = {"command": " ".join(["python", *sys.argv]), "batch": args.batch, "mps": {}, "mps_failed": {}}
    for state in args.mps.split(","):
        try:
            with mps_daemon() if state == "on" else nullcontext({}) as env:
                r = measure(names, counts, args.batch, args.seconds, args.rounds, args.threads, env)
        except Exception as err:  # MPS may be missing or refuse clients: the other setting's figures still count
            result["mps_failed"][state] = f"{type(err).__name__}: {err}"[:500]
            print(f"MPS {state}: failed: {result['mps_failed'][state]}")
        else:
            result = {**r.pop("environment"), **result}  # (the command stays the controller's)
            result["mps"][state] = r
            _print(state, r)
        path = write(result, f"concurrency-{dev.type}", args.out)  # after each MPS state: a cut-off run keeps some
    print("wrote", path)
    return result


def _print(state: str, r: dict) -> None:
    for name, row in r["variants"].items():
        cells = "  ".join(f"{count}: {b['steps_per_second']:8.1f}/s x{b['vs_one']:.2f}"
                          for count, b in row["processes"].items())
        print(f"MPS {state:3s} {name:18s} {row['variant']:18s} {cells}")
    for name, err in r["failed"].items():
        print(f"MPS {state:3s} {name:37s} failed: {err}")


def fastest(activation: str, dev: torch.device) -> str:
    """``activation/kernel`` as the GPU quick config runs it: fused TF32 where that runs, else DAC's fused kernel
    where that runs, else eager."""
    kernels = variant_names(activation, dev)
    return next((k for k in (f"{activation}/fused-tf32", f"{activation}/fused-fp32") if k in kernels),
                f"{activation}/eager")


if __name__ == "__main__":
    main()
