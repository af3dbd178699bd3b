"""One workflow job as a fresh ``python -m multiarg`` process against the same command handed to the job server
(``multiarg.jobserver``, which has imported PyTorch, torch._dynamo, NumPy, SciPy, Matplotlib and every multiarg
module once and forks the job), side by side in alternating rounds; the two outputs must be equal. Both are timed as
a Snakemake job is, from starting ``python -m multiarg`` to its exit: the forked path includes its client's own
interpreter start and the hand-over.

    python bench/fork_start.py                 # session I of the tiny config; bench/results/fork_start-<device>.json
    python bench/fork_start.py --rounds 3 --configfile workflow/configs/demo.yaml
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, device, environment, load_config, write
from workflow_ab import server_start, unequal

from multiarg import jobserver
from multiarg.config import cli_options, pretrain_options
from multiarg.io import load_torch


def job_args(config: dict, out: Path) -> list[str]:
    """The workflow's session-I job for arg2, seed 0, with the config's settings (as the pretrain_inner rule)."""
    return ["--threads", "1", "pretrain", "--activation", "arg2", "--seed", "0", "--out", str(out),
            *cli_options(pretrain_options(config))]


def timed(args: list[str], log: Path, env: dict) -> float:
    t = time.perf_counter()
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-m", "multiarg", *args], check=True, stdout=fh, stderr=subprocess.STDOUT,
                       env={**env, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=str(ROOT / "tests" / "configs" / "tiny.yaml"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    config, dev = load_config(args.configfile), device()
    times: dict[str, list[float]] = {"fresh": [], "forked": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = jobserver.start(str(work / "jobserver.log"))
        try:
            envs = {"forked": dict(os.environ),
                    "fresh": {k: v for k, v in os.environ.items() if k != jobserver.ENV}}
            for r in range(args.rounds):
                for way in ("fresh", "forked"):
                    log = work / f"{way}{r}.log"
                    times[way].append(timed(job_args(config, work / f"{way}{r}.pt"), log, envs[way]))
                    if (jobserver.FORKED in log.read_text()) != (way == "forked"):
                        raise RuntimeError(f"the {way} job did not run as meant:\n{log.read_text()}")
        finally:
            jobserver.stop(server)
        preload, threads = server_start(work / "jobserver.log")
        equal = not unequal(load_torch(work / "fresh0.pt"), load_torch(work / "forked0.pt"))
    median = {way: statistics.median(t) for way, t in times.items()}
    result = {**environment(dev), "configfile": args.configfile, "job": "pretrain_inner arg2 seed 0",
              "rounds": args.rounds, "server_preload_s": preload,
              "server_threads": threads, "seconds": times, "median_s": median,
              "saved_s": median["fresh"] - median["forked"], "fresh_over_forked": median["fresh"] / median["forked"],
              "outputs_equal": equal}
    print(f"session-I job: {median['fresh']:.2f} s fresh, {median['forked']:.2f} s through the job server "
          f"(its preloading took {preload} s once); outputs equal: {equal}")
    print("wrote", write(result, f"fork_start-{dev.type}", args.out))
    return result


if __name__ == "__main__":
    main()
