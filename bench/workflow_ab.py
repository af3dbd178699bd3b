"""The workflow under two values of one config key, side by side: each round runs the same targets twice in fresh
folders, once with each value (``--config KEY=VALUE``), the order alternating between rounds, and records each
run's wall time and the time of each job that runs networks (the rules with Snakemake benchmark files). The
outputs of the first round's two runs are compared: every tensor of every ``.pt`` output, every CSV and JSON field
except timings and what ranks by them (CSV rows are matched by their other fields) and the checksum of a ``.pt``
file (its bytes name the temporary file it was written to). A key that only changes how jobs start
(``job_server``) must leave them equal; one that changes the arithmetic (``inner_kernel``) will not, and the
record lists where they differ.

    python bench/workflow_ab.py                     # job_server False vs True, tiny config: job_server-<device>.json
    python bench/workflow_ab.py --configfile workflow/configs/demo.yaml --rounds 1      # job_server-demo-<device>.json
    python bench/workflow_ab.py --key inner_kernel --values eager,chunked --configfile workflow/configs/demo.yaml
    python bench/workflow_ab.py --summary bench/results/inner_kernel-demo-cpu.json   # a record's jobs, by kind
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from snakemake import __version__ as snakemake_version
from common import ROOT, device, environment, write

from multiarg import jobserver
from multiarg.io import load_torch

# Fields that hold time; compared outputs may differ only there.
TIMED = re.compile(r"sec")
COMPARED = (".pt", ".json", ".csv")


def run(configfile: str, targets: list[str], cores: int, setting: str, workdir: Path) -> dict:
    """One Snakemake run in ``workdir`` with ``--config setting``: wall seconds, jobs done, jobs the job server
    forked, the server's start-up from its log, and each rule's jobs and seconds."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(ROOT / "config.yaml"), configfile, "--cores", str(cores), "--config", setting,
           "--", *targets]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", done.stderr)
    log = workdir / "logs" / "jobserver.log"
    forked = sum(1 for _ in (workdir / "logs").rglob("*.log")
                 if jobserver.FORKED in _.read_text(errors="replace"))
    return {"seconds": seconds, "jobs": int(steps[-1][0]) if steps else 0, "forked_jobs": forked,
            "server_preload_s": server_start(log)[0] if log.exists() else None, **job_seconds(workdir)}


def job_seconds(workdir: Path) -> dict:
    """Each benchmarked job's wall seconds (``rule/wildcards...``) and their sum per rule."""
    root = workdir / "logs" / "benchmarks"
    jobs = {}
    for path in sorted(root.glob("*/**/*.tsv")):
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        jobs[path.relative_to(root).with_suffix("").as_posix()] = float(row["s"])
    rules: dict = {}
    for job, s in jobs.items():
        r = rules.setdefault(job.split("/")[0], {"jobs": 0, "seconds_total": 0.0})
        r["jobs"] += 1
        r["seconds_total"] = round(r["seconds_total"] + s, 2)
    return {"rules": rules, "job_seconds": jobs}


def server_start(log: Path) -> tuple[float, int]:
    """Seconds the job server took to import everything, and its native threads then, from its log."""
    seconds, threads = re.search(r"preloaded in ([0-9.]+) s, (\d+) native", log.read_text()).groups()
    return float(seconds), int(threads)


def differences(a: Path, b: Path) -> tuple[int, list[str]]:
    """Files under ``a`` compared with their namesakes under ``b``: how many, and where they differ."""
    found, count = [], 0
    for path in sorted(p for p in a.rglob("*") if p.is_file() and p.suffix in COMPARED):
        other, count = b / path.relative_to(a), count + 1
        if not other.exists():
            found.append(f"{path.relative_to(a)}: missing")
            continue
        load = {".pt": load_torch, ".json": lambda p: json.loads(p.read_text()), ".csv": _rows}[path.suffix]
        found += [f"{path.relative_to(a)}{where}" for where in unequal(load(path), load(other))]
    return count, found


def _rows(path: Path) -> list[dict]:
    """A CSV's rows in the order of their untimed fields (a table ranked partly by time may order its rows by it)."""
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return sorted(rows, key=lambda row: [(k, v) for k, v in row.items() if not TIMED.search(k)])


def unequal(x, y, where: str = "") -> list[str]:
    """Where two loaded outputs differ: tensors bit for bit, containers entry by entry, timings and ``sha256`` left
    out."""
    if isinstance(x, torch.Tensor):
        same = isinstance(y, torch.Tensor) and x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)
        return [] if same else [where]
    if isinstance(x, dict):
        if not isinstance(y, dict) or x.keys() != y.keys():
            return [f"{where} (keys)"]
        return [w for k in x if not TIMED.search(str(k)) and k != "sha256"
                for w in unequal(x[k], y[k], f"{where}/{k}")]
    if isinstance(x, (list, tuple)):
        if not isinstance(y, (list, tuple)) or len(x) != len(y):
            return [f"{where} (length)"]
        return [w for i, (u, v) in enumerate(zip(x, y)) for w in unequal(u, v, f"{where}[{i}]")]
    return [] if x == y or (x != x and y != y) else [where]  # NaN equals NaN here


def kinds(runs: dict[str, list[dict]]) -> dict:
    """Per kind of job (its path without the seed): mean seconds over rounds and seeds under each value, and the
    first value's over the second's."""
    first, second = runs
    seconds: dict = {}
    for value, rs in runs.items():
        for r in rs:
            for job, s in r["job_seconds"].items():
                seconds.setdefault(re.sub(r"/seed\d+$", "", job), {}).setdefault(value, []).append(s)
    table = {kind: {v: statistics.mean(t) for v, t in by.items()} for kind, by in seconds.items()}
    return {kind: {**t, "first_over_second": t[first] / t[second]} for kind, t in sorted(table.items())}


def print_kinds(record: dict) -> None:
    first, second = record["values"]
    print(f"{'job kind':48} {first:>10} {second:>10}  ratio (s, mean over rounds and seeds)")
    for kind, t in sorted(record["kinds"].items(), key=lambda kv: kv[1]["first_over_second"]):
        print(f"{kind:48} {t[first]:10.2f} {t[second]:10.2f}  {t['first_over_second']:.2f}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=str(ROOT / "tests" / "configs" / "tiny.yaml"))
    p.add_argument("--targets", nargs="*", default=["all"])
    p.add_argument("--key", default="job_server", help="the config key whose two values are compared")
    p.add_argument("--values", default="False,True",
                   help="its two values, as --config reads them (Snakemake reads False, not false, as a boolean)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--keep", default=None, help="keep the runs' folders here (default: a temporary folder)")
    p.add_argument("--out", default=None)
    p.add_argument("--summary", default=None, metavar="RECORD", help="print a record's job kinds instead of running")
    args = p.parse_args(argv)
    if args.summary:
        record = json.loads(Path(args.summary).read_text())
        print_kinds({**record, "kinds": kinds(record["runs"])})
        return record
    values = args.values.split(",")
    if len(values) != 2 or values[0] == values[1]:
        p.error(f"--values takes two different values, got {args.values!r}")
    dev = device()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        runs: dict[str, list[dict]] = {v: [] for v in values}
        for r in range(args.rounds):
            for value in (values if r % 2 == 0 else values[::-1]):
                folder = base / f"{args.key}-{value}-{r}"
                runs[value].append(run(args.configfile, args.targets, args.cores, f"{args.key}={value}", folder))
                print(f"round {r} {args.key}={value}: {runs[value][-1]['seconds']:.1f} s", flush=True)
        a, b = (base / f"{args.key}-{v}-0" / "results" for v in values)
        compared, differ = differences(a, b)
    median = {v: statistics.median(r["seconds"] for r in rs) for v, rs in runs.items()}
    result = {**environment(dev), "snakemake": snakemake_version, "configfile": args.configfile,
              "targets": args.targets, "cores": args.cores, "rounds": args.rounds, "key": args.key,
              "values": values, "runs": runs, "median_s": median,
              "first_over_second": median[values[0]] / median[values[1]], "kinds": kinds(runs),
              "compared_files": compared, "differences": differ, "outputs_equal": not differ}
    print_kinds(result)
    print(f"{args.key}: {values[0]} {median[values[0]]:.1f} s, {values[1]} {median[values[1]]:.1f} s "
          f"({result['first_over_second']:.2f}x); {compared} output files compared, {len(differ)} differ")
    stem = Path(args.configfile).stem
    print("wrote", write(result, f"{args.key}{'' if stem == 'tiny' else '-' + stem}-{dev.type}", args.out))
    return result


if __name__ == "__main__":
    main()
