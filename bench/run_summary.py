"""Summary of one finished workflow run, to commit beside the code that made it: the command, scale, wall time,
jobs per rule (finished and failed), each rule's time and memory from Snakemake's benchmark files, versions and
device, and every figure and table the run wrote (with checksums; with ``--copy``, the files themselves).

    python bench/run_summary.py --configfile workflow/configs/gpu-quick.yaml --copy --out bench/results/quick-cuda
    python bench/run_summary.py --configfile workflow/configs/demo.yaml --estimate bench/results/estimate-cpu.json \
        --out demo-summary                               # and each rule's time against bench/estimate_cost.py's

Reads the newest Snakemake log under ``WORKDIR/.snakemake/log`` (or ``--log``), ``WORKDIR/logs/benchmarks`` and
``WORKDIR/results/{figures,tables}``. Writes ``summary.json`` and ``summary.md`` (which holds every Markdown
table of the run) to ``--out``. With ``--estimate``, each rule the estimator times is set beside its prediction: a
check of the cost model on a real run, and the time per job it does not model (writing results, checkpoints and
logs, the scheduler's own time, jobs contending for the machine). Device and versions are this interpreter's: run it
with the Python that ran the workflow (its ``.venv``). With ``--keep-run``, an account whose tables newer code
remade from the same run keeps its record of the run and takes the new outputs.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path

from accounts import compact_png
from common import device, environment, load_config
from estimate_cost import timing_threads

from multiarg import jobserver
from multiarg.io import write_record, write_text

OUTPUTS = {"figures": ("*.png", "*.pdf"), "tables": ("*.csv", "*.md", "*.tex", "*.json")}


def newest_log(workdir: Path) -> Path:
    """The newest log of a run that executed jobs (a report or a dry run writes a log without the header)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))  # names start with the start time
    runs = [log for log in logs if "Command:" in log.read_text()]
    if not runs:
        raise SystemExit(f"no log of a Snakemake run under {workdir / '.snakemake' / 'log'}")
    return runs[-1]


def parse_log(text: str) -> dict:
    """Command, version, start, planned/finished/failed jobs per rule and the elapsed time of a Snakemake log."""
    def field(name):
        m = re.search(rf"^\s*{name}: (.*)$", text, re.M)
        return m[1].strip() if m else None

    stats = re.search(r"^Job stats:\n.*?\n-+\s+-+\n(.*?)\n\n", text, re.M | re.S)
    planned = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats[1], re.M) if rule != "total"
               } if stats else {}
    elapsed = re.search(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d+):([\d.]+)", text, re.M)
    stamps = re.findall(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", text, re.M)
    if elapsed:
        days, hours, minutes, secs = (float(g or 0) for g in elapsed.groups())
        seconds = round(((days * 24 + hours) * 60 + minutes) * 60 + secs, 1)
    elif stamps and field("Date"):  # a run cut off before Snakemake's last line: up to its last job event
        last = datetime.strptime(" ".join(stamps[-1].split()), "%a %b %d %H:%M:%S %Y")
        seconds = (last - datetime.strptime(field("Date"), "%Y-%m-%d %H:%M:%S")).total_seconds()
    else:
        seconds = None
    return {"command": field("Command"), "snakemake": field("Snakemake version"), "started": field("Date"),
            "elapsed_seconds": seconds, "complete": elapsed is not None, "planned": planned,
            "finished": dict(Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", text))),
            "failed": dict(Counter(re.findall(r"^Error in rule (\w+):", text, re.M)))}


def run_start(run: dict) -> float | None:
    """The run's start (its log's local date) as a timestamp, a second early: the log has whole seconds."""
    return datetime.strptime(run["started"], "%Y-%m-%d %H:%M:%S").timestamp() - 1 if run["started"] else None


def benchmarks(workdir: Path, since: float | None = None) -> dict:
    """Per rule, from Snakemake's benchmark files written since ``since`` (the run's start: files an earlier run
    left in the same folder are not this run's): jobs, their total and longest wall time, the largest RSS. A job the
    job server forked has its own peak RSS in its log (the benchmark measured only the process that handed it over);
    ``forked`` counts those jobs."""
    rules: dict = {}
    for path in sorted((workdir / "logs" / "benchmarks").glob("*/**/*.tsv")):
        if since is not None and path.stat().st_mtime < since:
            continue
        job = path.relative_to(workdir / "logs" / "benchmarks")  # its log: logs/<the same path>.log
        rule, forked = job.parts[0], forked_rss_mb(workdir / "logs" / job.with_suffix(".log"))
        with open(path) as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                r = rules.setdefault(rule, {"jobs": 0, "forked": 0, "seconds_total": 0.0, "seconds_max": 0.0,
                                            "max_rss_mb": 0.0})
                s = float(row["s"])
                r["jobs"] += 1
                r["forked"] += forked is not None
                r["seconds_total"] += s
                r["seconds_max"] = max(r["seconds_max"], s)
                rss = forked if forked is not None else float(row["max_rss"]) if row["max_rss"] != "NA" else 0.0
                r["max_rss_mb"] = max(r["max_rss_mb"], rss)
    return rules


def job_cpus(workdir: Path, since: float | None = None) -> dict:
    """How many of the job logs written since ``since`` name each CPU and kernel set (``multiarg.cli`` logs both):
    the run's own hardware, which the summarising process's need not be."""
    found = Counter()
    for path in (workdir / "logs").glob("**/*.log"):
        if since is None or path.stat().st_mtime >= since:
            found.update(re.findall(r" INFO root: cpu: (.+)$", path.read_text(errors="replace"), re.M)[:1])
    return dict(found)


def forked_rss_mb(log: Path) -> float | None:
    """The peak RSS a forked job reported at its end (``multiarg.jobserver``), or None if it ran as its own process."""
    found = re.findall(rf"{re.escape(jobserver.USAGE)} ([0-9.]+) MB", log.read_text()) if log.exists() else []
    return float(found[-1]) if found else None


def against_estimate(measured: dict, estimate: dict) -> dict:
    """Per rule an estimate (``bench/estimate_cost.py``'s JSON) timed and the run has benchmarks of: predicted and
    measured seconds, their ratio, and the measured seconds per job beyond the prediction."""
    rows = {}
    for rule, predicted in estimate["rules"].items():
        if rule in measured:
            m, jobs, p = measured[rule]["seconds_total"], measured[rule]["jobs"], predicted["hours"] * 3600
            rows[rule] = {"jobs": jobs, "jobs_estimated": predicted["jobs"], "predicted_s": p, "measured_s": m,
                          "measured_over_predicted": m / p if p else None, "unmodelled_s_per_job": (m - p) / jobs}
    predicted, measured_total = (sum(r[k] for r in rows.values()) for k in ("predicted_s", "measured_s"))
    measured_by = (estimate.get("recomposed_from") or {}).get("command")
    return {"device": estimate["device"], "command": measured_by or estimate["command"],
            "composed_by": estimate["command"] if measured_by else None, "inner_kernel": estimate["inner_kernel"],
            "threads": timing_threads(estimate), "epoch_fraction": estimate["epoch_fraction"],
            "overhead": estimate.get("overhead"), "rules": rows,
            "total": {"predicted_s": predicted, "measured_s": measured_total,
                      "measured_over_predicted": measured_total / predicted if predicted else None}}


def outputs(workdir: Path) -> dict:
    found = {}
    for kind, patterns in OUTPUTS.items():
        folder = workdir / "results" / kind
        files = sorted({p for pattern in patterns for p in folder.glob(pattern)})
        found[kind] = {p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                       for p in files}
    return found


def _overhead_text(overhead: dict | None) -> str:
    if not overhead:
        return "; no start-up or data loading counted"
    loads = ", ".join(f"{d} {s:.2f} s" for d, s in overhead["load_s"].items())
    startup = overhead["startup_s"]
    return (f"; each job also pays a start-up of {startup['train']:.1f} s (training) or {startup['evaluate']:.1f} s "
            f"(evaluation) and its data loading: {loads}")


def _estimate_lines(e: dict) -> list[str]:
    lines = ["", "## Against the estimate", "",
             f"Predicted by `{e['command']}`"
             + (f" (composed over this DAG by `{e['composed_by']}`)" if e.get("composed_by") else "")
             + f" on {e['device']} (kernel {e['inner_kernel']}, CPU threads "
             f"{e.get('threads') or 'each job its own'}, epoch fraction "
             f"{e['epoch_fraction']}: the configured maximum epochs, an upper bound where early stopping ends a run "
             f"sooner{_overhead_text(e.get('overhead'))}). Measured: the run's benchmark files, which also count "
             "what the model leaves out.", "",
             "| rule | jobs | predicted s | measured s | measured / predicted | unmodelled s per job |",
             "|---|---|---|---|---|---|"]
    rows = [(rule, r["jobs"], r["predicted_s"], r["measured_s"], r["measured_over_predicted"],
             f"{r['unmodelled_s_per_job']:.1f}") for rule, r in e["rules"].items()]
    t = e["total"]
    rows.append(("total", "", t["predicted_s"], t["measured_s"], t["measured_over_predicted"], ""))
    # no ratio where nothing was predicted: e.g. a run that had nothing to do benchmarks no rule of the estimate
    return lines + [f"| {rule} | {jobs} | {p:.1f} | {m:.1f} | {'—' if ratio is None else f'{ratio:.2f}'} | {extra} |"
                    for rule, jobs, p, m, ratio, extra in rows]


def markdown(summary: dict, workdir: Path, copied: bool) -> str:
    run = summary["run"]
    done, failed = sum(run["finished"].values()), sum(run["failed"].values())
    lines = [f"# Workflow run: {summary['scale']}", "",
             f"- command: `{run['command']}`", f"- started {run['started']}; wall time {run['elapsed_seconds']} s",
             f"- jobs: {done} finished, {failed} failed, {sum(run['planned'].values())} planned",
             f"- device: {summary['environment']['device']}; torch {summary['environment']['torch']}, triton "
             f"{summary['environment']['triton']}, Snakemake {run['snakemake']}, Python "
             f"{summary['environment']['python']}",
             "- jobs ran on: " + ("; ".join(f"{cpu} ({n} jobs)" for cpu, n in summary["job_cpus"].items())
                                  or "not in their logs (jobs before the logs named it)")]
    if "outputs_reread" in summary:
        lines += [f"- outputs re-read on {summary['outputs_reread']}, after newer code remade tables from this run's "
                  "results (`--keep-run`): the run itself is as recorded above"]
    lines += ["", "| rule | jobs | forked | total s | longest s | max RSS MB |", "|---|---|---|---|---|---|"]
    lines += [f"| {rule} | {r['jobs']} | {r['forked']} | {r['seconds_total']:.1f} | {r['seconds_max']:.1f} | "
              f"{r['max_rss_mb']:.0f} |" for rule, r in sorted(summary["benchmarks"].items())]
    if any(r["forked"] for r in summary["benchmarks"].values()):
        lines += ["", "Forked: jobs the job server started (`multiarg.jobserver`); their RSS is their own peak, "
                  "counting the pages they share with the server's preloaded imports."]
    if "estimate" in summary:
        lines += _estimate_lines(summary["estimate"])
    lines += ["", "## Figures", ""]
    lines += [f"![{name}](figures/{name})" if copied else f"- {name}"
              for name in summary["outputs"]["figures"] if name.endswith(".png")]
    for name in (n for n in summary["outputs"]["tables"] if n.endswith(".md")):
        table = (workdir / "results" / "tables" / name).read_text().strip()
        lines += ["", f"## {name}", "", re.sub(r"^#", "###", table, flags=re.M)]  # its headings go under ours
    return "\n".join(lines) + "\n"


def new_summary(workdir: Path, log: Path, configfile: str | None) -> dict:
    """A run's record from its Snakemake ``log``, benchmark files and job logs, and its outputs."""
    run = parse_log(log.read_text())
    start = run_start(run)
    return {"scale": load_config(configfile)["scale"], "configfile": configfile, "environment": environment(device()),
            "run": run, "benchmarks": benchmarks(workdir, start), "job_cpus": job_cpus(workdir, start),
            "outputs": outputs(workdir)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=".", help="where the workflow ran (holds .snakemake, logs and results)")
    p.add_argument("--log", default=None, help="the Snakemake log to read (default: the newest)")
    p.add_argument("--configfile", default=None, help="the run's --configfile over config.yaml, for its scale")
    p.add_argument("--copy", action="store_true",
                   help="copy the tables (with the summary's per-seed values) and the PNG figures, as 256-colour "
                        "palettes (accounts.compact_png), into --out")
    p.add_argument("--estimate", default=None, help="a bench/estimate_cost.py JSON to set each rule's time beside")
    p.add_argument("--keep-run", action="store_true",
                   help="keep --out's record of the run (its command, times, jobs and environment) and re-read only "
                        "the outputs: for an account whose tables newer code remade from the same run")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    workdir, out = Path(args.workdir), Path(args.out)
    if args.keep_run:
        if args.log or args.configfile or not (out / "summary.json").is_file():
            p.error(f"--keep-run takes the run's record from {out / 'summary.json'}, which must exist, and no --log "
                    "or --configfile")
        summary = json.loads((out / "summary.json").read_text())
        summary.setdefault("job_cpus", job_cpus(workdir, run_start(summary["run"])))  # accounts older than it
        summary["outputs"], summary["outputs_reread"] = outputs(workdir), datetime.now().isoformat(timespec="seconds")
    else:
        summary = new_summary(workdir, Path(args.log) if args.log else newest_log(workdir), args.configfile)
    run = summary["run"]
    if args.estimate:
        summary["estimate"] = against_estimate(summary["benchmarks"], json.loads(Path(args.estimate).read_text()))
    out.mkdir(parents=True, exist_ok=True)
    if args.copy:
        for kind in OUTPUTS:
            (out / kind).mkdir(exist_ok=True)
            for name in summary["outputs"][kind]:
                if kind == "tables":
                    shutil.copy2(workdir / "results" / kind / name, out / kind / name)
                elif name.endswith(".png"):  # the checksums above are the run's own files'
                    compact_png(workdir / "results" / kind / name, out / kind / name)
    write_record(summary, out / "summary.json")
    write_text(markdown(summary, workdir, args.copy), out / "summary.md")
    print(f"{sum(run['finished'].values())} jobs finished, {sum(run['failed'].values())} failed, "
          f"{run['elapsed_seconds']} s; wrote {out / 'summary.md'}")
    return summary


if __name__ == "__main__":
    main()
