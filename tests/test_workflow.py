"""End to end: the Snakemake DAG on real MNIST at tiny scale, and the paper-scale dry run."""
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from multiarg.io import load_torch
from multiarg.runtime import resolve_device
from multiarg.train import rounding_of
from test_cpu_isa import HAS_AVX2

REPO = Path(__file__).resolve().parents[1]


def snakemake(*args, cwd, env=None):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(cwd),
           "--configfile", str(REPO / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_paper_scale_dry_run_lists_the_full_dag(tmp_path):
    result = snakemake("-n", "--cores", "8", "all", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M))
    # Session II: 2 datasets x 2 archs x (24 arg2 + 4 arg1 + 4 relu + 6 arg2-xavier + 8 arg3 + 4 gamma + 4 dac)
    # seeds; session III: arg2, arg1, relu, gamma, dac x 4 seeds (the Xavier control and the 3-arg nets stop
    # after session II); RNNs: 5 activations x 4 seeds.
    assert counts["train_session2"] == "216" and counts["train_session3"] == "80" and counts["train_rnn"] == "20"
    # session I: 24 arg2 + 4 arg1 + 8 arg3, and 6 Xavier 2-arg and 8 Xavier 3-arg nets per setting, so that no
    # untrained one is analysed twice (the first 6 Xavier 2-arg nets also start the arg2-xavier runs)
    assert counts["pretrain_inner"] == "92" and counts["prepare_data"] == "2"
    assert counts["analyze_nonlinearities"] == "1" and counts["fig7_fig8"] == "2"


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "workflow" / "configs").glob("*.yaml")))
def test_every_shipped_config_plans_its_dag(tmp_path, name):
    """The README's commands for the demo, the studies and the GPU quick run stay runnable: each config's DAG
    resolves, and its network jobs are those its trial counts ask for."""
    from multiarg.config import load_config

    result = snakemake("-n", "--cores", "2", "all", "--configfile", str(REPO / "config.yaml"),
                       str(REPO / "workflow" / "configs" / name), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M))
    config = load_config(REPO / "config.yaml", REPO / "workflow" / "configs" / name)
    trials = config["analysis"]["trials"]  # learned 2-arg, Xavier 2-arg, learned 3-arg: seeds 0..N-1
    assert int(counts["pretrain_inner"]) >= sum(trials.values())
    # per setting, each activation's seeds and, for an analysed one, its trial seeds
    runs = {act: (set(config["seeds"]) if act in config["activations"] else set()) | set(range(trials.get(act, 0)))
            for act in {*config["activations"], *trials}}
    settings = len(config["data"]["datasets"]) * len(config["archs"])
    assert int(counts["train_session2"]) == settings * sum(map(len, runs.values()))


def test_an_xavier_init_depends_only_on_what_it_uses(tmp_path):
    """Tuning session I's regression must not rerun the Xavier inits (and every Xavier control after them)."""
    result = snakemake("-n", "-p", "--cores", "1", "results/init/arg2-xavier/seed0.pt", "results/init/arg2/seed0.pt",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    xavier, pretrained = (next(line for line in result.stdout.splitlines() if f"--activation {a} " in line)
                          for a in ("arg2-xavier", "arg2"))
    assert "--steps" in pretrained and "--steps" not in xavier and "--sigma" not in xavier
    assert "--cells 5" in xavier and "--inner-hidden 64" in xavier


def test_a_flop_matched_learned_baseline_starts_from_its_designs_session_I_net(tmp_path):
    """arg1-flops differs from arg1 only in its widths, so it takes arg1's session-I net, and is matched."""
    result = snakemake("-n", "-p", "--cores", "1", "results/runs/cifar10/mlp/arg1-flops/seed0/session2/model.pt",
                       "--configfile", str(REPO / "config.yaml"),
                       str(REPO / "workflow" / "configs" / "cifar10-mlp-flops-wrap.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    train = next(line for line in lines if "train --session 2" in line)
    assert "--activation arg1-flops " in train and "--init results/init/arg1/seed0.pt" in train
    assert "--match-to arg2" in train
    assert any("pretrain --activation arg1 " in line for line in lines)
    assert not any("pretrain --activation arg1-flops" in line for line in lines)


def test_a_scale_widening_reaches_the_matched_trainings_and_the_default_stays_unnamed(tmp_path):
    """Named only when it is not the paper's offset, so that runs made before the key existed are not trained again."""
    target = "results/runs/cifar10/cnn/dac/seed0/session2/model.pt"
    (tmp_path / "scale.yaml").write_text("matching:\n  widening: scale\n")
    for extra, named in (([], False), ([str(tmp_path / "scale.yaml")], True)):
        result = snakemake("-n", "-p", "--cores", "1", target, "--configfile", str(REPO / "config.yaml"), *extra,
                           cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        train = next(line for line in result.stdout.splitlines() if "train --session 2" in line)
        assert "--match-to arg2" in train and ("--widening scale" in train) == named


def test_only_fig7_takes_the_number_of_examples(tmp_path):
    """Snakemake reruns a job whose params changed, so Fig. 8 must not carry Fig. 7's ``examples``."""
    result = snakemake("-n", "-p", "--cores", "1", "--forceall", "results/figures/fig7.pdf", "results/figures/fig8.pdf",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    fig7, fig8 = (next(line for line in result.stdout.splitlines() if f"multiarg {f} " in line)
                  for f in ("fig7", "fig8"))
    assert "--examples 4" in fig7 and "--examples" not in fig8


def test_one_target_builds_without_naming_cores(tmp_path):
    """A bare ``snakemake <target>`` runs: the workflow profile (profiles/default) supplies the cores."""
    result = snakemake("--printshellcmds", "results/tables/param_counts.csv", cwd=tmp_path)  # a flag ends --configfile
    assert result.returncode == 0, result.stderr[-3000:]
    assert "workflow specific profile profiles/default" in result.stderr
    assert (tmp_path / "results" / "tables" / "param_counts.csv").stat().st_size > 0


@pytest.mark.e2e
def test_tiny_real_mnist_run_writes_every_artefact(tmp_path, mirror):
    tiny = REPO / "tests" / "configs" / "tiny.yaml"
    # pinned where the CPU has the set, so that the job server's forks are seen to run with it
    isa = "avx2" if HAS_AVX2 else "auto"
    result = snakemake("--cores", "2", "all", "--configfile", str(REPO / "config.yaml"), str(tiny),
                       "--config", f"cpu_isa={isa}", cwd=tmp_path, env={"MULTIARG_DATA_MIRROR": str(mirror)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = tmp_path / "results"
    for name in ("fig4", "fig5", "fig7", "fig8", "rnn", "compare", "versus"):
        for ext in ("pdf", "png"):
            assert (results / "figures" / f"{name}.{ext}").stat().st_size > 10_000
    with open(results / "tables" / "param_counts.csv") as fh:
        mlp = {r["activation"]: r for r in csv.DictReader(fh) if r["arch"] == "mlp"}
    assert set(mlp) == {"arg2", "arg1", "relu", "arg2-xavier", "arg3", "gamma", "dac", "relu-flops", "arg1-flops",
                        "relu-width"}
    assert all(abs(float(mlp[a]["mismatch_pct"])) < 5 for a in ("relu", "gamma", "dac"))
    flops = {a: float(mlp[a]["mflops_forward"]) for a in ("arg2", "relu", "relu-flops", "arg1-flops")}
    assert all(abs(flops[a] / flops["arg2"] - 1) < 0.05 for a in ("relu-flops", "arg1-flops"))
    assert flops["relu"] < flops["arg2"]  # so FLOP-matching widens ReLU past parameter-matching
    assert int(mlp["relu-flops"]["params_exact"]) > int(mlp["relu"]["params_exact"])
    assert mlp["relu-width"]["widths"] == mlp["arg2"]["widths"] != mlp["relu"]["widths"]
    assert int(mlp["relu-width"]["params_exact"]) < int(mlp["relu"]["params_exact"])
    with open(results / "tables" / "summary.csv") as fh:
        summary = {(r["arch"], r["activation"]): r for r in csv.DictReader(fh)}
    designs = {"arg2", "arg1", "relu", "gamma", "dac", "relu-flops", "arg1-flops", "relu-width"}
    assert {a for arch, a in summary if arch == "mlp"} == designs
    assert {a for arch, a in summary if arch == "rnn-rows"} == {"arg2", "arg1", "relu", "tanh", "gamma"}
    assert summary["mlp", "dac"]["robust_acc"] and 1 <= int(summary["mlp", "gamma"]["test_acc_rank"]) <= len(designs)
    for reference, table, act in (("relu", "versus_relu", "dac"), ("arg2", "versus_reference", "relu-flops")):
        with open(results / "tables" / f"{table}.csv") as fh:
            versus = {(r["arch"], r["activation"], r["metric"]): r for r in csv.DictReader(fh)}
        assert {a for arch, a, m in versus if arch == "mlp" and m == "test_acc"} == designs - {reference}
        assert float(versus["mlp", act, "test_acc"]["diff"]) == pytest.approx(
            float(summary["mlp", act]["test_acc"]) - float(summary["mlp", reference]["test_acc"]), abs=0.011)
    with open(results / "tables" / "rnn.csv") as fh:
        rnn = {r["activation"]: r for r in csv.DictReader(fh)}
    assert rnn["arg2"]["k_negative"].endswith("/2") and int(rnn["relu"]["units"]) > int(rnn["arg2"]["units"])
    with open(results / "tables" / "curvature_tests.csv") as fh:
        tests = {(r["kind"], r["arch"], r["dataset"]): r for r in csv.DictReader(fh)}
    assert tests["learned", "mlp", "mnist"]["n"] == "2" and tests["xavier-init", "mlp", "mnist"]["n"] == "1"
    starts = tests["start", "mlp", "mnist"]  # the learned nets' own session-I nets, over the same regions
    assert int(starts["n"]) + int(starts["n_flat"]) + int(starts["n_ridge"]) == 2
    assert tests["learned", "mlp", "mnist"]["k_negative_at_start"] == starts["k_negative"]
    assert "cannot both hold" in (results / "tables" / "curvature_tests.md").read_text()
    with open(results / "tables" / "spectra.csv") as fh:
        assert {r["n_args"] for r in csv.DictReader(fh)} == {"2", "3"}
    with open(results / "tables" / "maturation.csv") as fh:
        maturation = {(r["kind"], r["n_args"], r["arch"], r["dataset"]): r for r in csv.DictReader(fh)}
    # two epochs: every run's best epoch comes by epoch 5, so no run can tell and the test says so
    assert maturation["learned", "2", "mlp", "mnist"]["n_short"] == "2"
    assert maturation["learned", "2", "all", "all"]["verdict"] == "n/a (no run trained past epoch 5)"
    assert {k[:2] for k in maturation} == {("learned", "2"), ("learned", "3"), ("xavier-trained", "2")}
    with open(results / "tables" / "claims.csv") as fh:
        claims = [r["claim"] for r in csv.DictReader(fh)]
    assert "learned 2-arg MLP nonlinearities: sign of curvature" in claims
    assert "learned 2-arg MLP nonlinearities: curvature sign learned in session II, not kept from session I" in claims
    assert "learned 2-arg nonlinearities: take their final shape early (Fig. 5)" in claims
    assert "mnist MLP: retrained on the frozen 2-arg nonlinearity, session III reaches session II's accuracy" in claims
    assert any("robust accuracy (AutoAttack)" in c for c in claims)
    assert "mnist MLP: 2-arg performs better (session-III test accuracy)" in claims
    assert load_torch(results / "runs/mnist/mlp/arg2/seed0/session2/model.pt")["train_config"]["augment"] == "crop"
    with open(results / "runs/mnist/mlp/arg2/seed1/session3/metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    log = (tmp_path / "logs" / "train_session2" / "mnist" / "mlp" / "arg2" / "seed0.log").read_text()
    step = (f"python -m multiarg --inner-kernel eager --compile none --tf32 conv --cpu-isa {isa} --threads 1 train"
            " --session 2 --data")
    assert log.startswith("multiarg: forked by the job server") and f"command: {step}" in log
    assert isa == "auto" or "PyTorch kernels AVX2" in log
    _check_run_summary(tmp_path, tiny)
    moved = tmp_path / "mirror-elsewhere"  # the same data read from another path does not rerun the DAG
    moved.symlink_to(mirror)
    again = snakemake("-n", "--cores", "2", "all", "--configfile", str(REPO / "config.yaml"), str(tiny),
                      "--config", f"cpu_isa={isa}", cwd=tmp_path, env={"MULTIARG_DATA_MIRROR": str(moved)})
    assert "Nothing to be done" in again.stdout + again.stderr
    if isa != "auto":  # unpinning the instruction set reruns the steps that compute numbers, not the data
        unpinned = snakemake("-n", "--cores", "2", "all", "--configfile", str(REPO / "config.yaml"), str(tiny),
                             cwd=tmp_path, env={"MULTIARG_DATA_MIRROR": str(mirror)})
        counts = dict(re.findall(r"^(\w+)\s+(\d+)$", unpinned.stdout, re.M))
        assert {"pretrain_inner", "train_session2", "analyze_nonlinearities"} <= set(counts), unpinned.stdout[-2000:]
        assert "prepare_data" not in counts
    report = tmp_path / "report.html"
    built = snakemake("--report", str(report), "--configfile", str(REPO / "config.yaml"), str(tiny), cwd=tmp_path,
                      env={"MULTIARG_DATA_MIRROR": str(mirror)})
    assert built.returncode == 0, built.stderr[-3000:]
    html = report.read_text()
    for name in ("fig4", "fig5", "fig7", "fig8", "rnn", "compare", "versus"):
        assert f"{name}.png" in html
    for table in ("param_counts", "fits", "curvature_tests", "spectra", "maturation", "summary", "rnn", "table1",
                  "claims"):
        assert f"{table}.csv" in html
    assert "TEST scale (300 MNIST images" in html and "input_bins_3arg" in html  # captions and the config


def _check_run_summary(workdir, configfile):
    """bench/run_summary.py on the run just made: what the log, the benchmark files and the results say."""
    out, estimate = workdir / "summary", workdir / "estimate.json"
    stale = workdir / "logs" / "benchmarks" / "train_session2" / "from_an_earlier_run.tsv"
    stale.write_text("s\th:m:s\tmax_rss\n99.0\t0:01:39\t10.0\n")
    os.utime(stale, (0, 0))  # written long before this run began: not one of its jobs
    estimate.write_text(json.dumps({"device": "here", "command": "python bench/estimate_cost.py", "epoch_fraction": 1,
                                    "inner_kernel": "eager", "threads": None,
                                    "overhead": {"startup_s": {"train": 2.0, "evaluate": 1.5},
                                                 "load_s": {"mnist": 0.25}},
                                    "rules": {"train_session2": {"jobs": 13, "hours": 0.001},
                                              "not_in_this_run": {"jobs": 1, "hours": 0.5}}}))
    subprocess.run([sys.executable, str(REPO / "bench" / "run_summary.py"), "--workdir", str(workdir), "--configfile",
                    str(configfile), "--copy", "--estimate", str(estimate), "--out", str(out)], check=True,
                   capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    run = summary["run"]
    assert run["complete"] and not run["failed"] and run["finished"] == run["planned"] and run["elapsed_seconds"] > 0
    assert "--cores 2 all" in run["command"] and summary["scale"].startswith("TEST scale")
    trained = summary["benchmarks"]["train_session2"]
    assert trained["jobs"] == run["finished"]["train_session2"] and trained["seconds_total"] > 0
    # every job was forked by the job server, and its RSS is the job's own (the client holds no PyTorch)
    assert trained["forked"] == trained["jobs"] and trained["max_rss_mb"] > 200
    fig4 = summary["outputs"]["figures"]["fig4.png"]
    # the checksum is the run's own figure's; the account keeps it as a palette PNG of the same size
    assert fig4["sha256"] == hashlib.sha256((workdir / "results" / "figures" / "fig4.png").read_bytes()).hexdigest()
    with Image.open(out / "figures" / "fig4.png") as copy, Image.open(workdir / "results/figures/fig4.png") as own:
        assert copy.mode == "P" and copy.size == own.size
    text = (out / "summary.md").read_text()
    assert "![fig4.png](figures/fig4.png)" in text and "## curvature_tests.md" in text and "| train_rnn |" in text
    # against an estimate of 3.6 s for all session-II jobs; a rule the run has no benchmarks of is left out
    (rule,) = summary["estimate"]["rules"]
    row, measured = summary["estimate"]["rules"][rule], trained["seconds_total"]
    assert rule == "train_session2" and row["jobs"] == trained["jobs"] and row["jobs_estimated"] == 13
    assert row["measured_over_predicted"] == pytest.approx(measured / 3.6)
    assert row["unmodelled_s_per_job"] == pytest.approx((measured - 3.6) / trained["jobs"])
    assert "CPU threads each job its own," in text
    # every job's log names its CPU and kernels: one kind here
    logs = [p for p in (workdir / "logs").glob("**/*.log") if "benchmarks" not in p.parts and p.name != "jobserver.log"]
    ((cpu, jobs),) = summary["job_cpus"].items()
    assert "PyTorch kernels" in cpu and jobs == len(logs) and f"- jobs ran on: {cpu} ({jobs} jobs)" in text
    assert "## Against the estimate" in text and f"| train_session2 | {trained['jobs']} | 3.6 |" in text
    assert "start-up of 2.0 s (training) or 1.5 s (evaluation) and its data loading: mnist 0.25 s" in text
    # a table remade by newer code from the same run: the account keeps its record of the run and takes the table
    remade = workdir / "results" / "tables" / "remade.md"
    remade.write_text("# A remade table\n")
    try:
        subprocess.run([sys.executable, str(REPO / "bench" / "run_summary.py"), "--workdir", str(workdir), "--copy",
                        "--keep-run", "--out", str(out)], check=True, capture_output=True)
    finally:
        remade.unlink()
    kept = json.loads((out / "summary.json").read_text())
    assert kept.pop("outputs")["tables"]["remade.md"]["bytes"] == 17 and (out / "tables" / "remade.md").exists()
    reread = f"- outputs re-read on {kept.pop('outputs_reread')}, after newer code remade tables"
    assert kept == {k: v for k, v in summary.items() if k != "outputs"}
    section, remade_text = "\n\n## remade.md\n\n### A remade table", (out / "summary.md").read_text()
    assert reread in remade_text and section in remade_text
    assert re.sub(r"\n- outputs re-read on .*", "", remade_text.replace(section, "")) == text


def network_rules_run_on(workdir: Path, mirror: Path, kernel: str) -> None:
    """Session I-III, collecting inner-net inputs, PGD training, AutoAttack, a recurrent net and a DAC net at tiny
    scale with ``inner_kernel: kernel``: each job must finish on that kernel (a fallback to eager warns "cannot
    run")."""
    run, rnn = "results/runs/mnist/mlp/arg2/seed0", "results/rnn/rows/arg2/seed0"
    targets = [f"{run}/session2/inputs.pt", f"{run}/session3/model.pt", f"{run}/adversarial/autoattack.json",
               f"{rnn}/summary.json", "results/runs/mnist/mlp/dac/seed0/session2/model.pt"]
    result = snakemake("--cores", "2", *targets, "--configfile", str(REPO / "config.yaml"),
                       str(REPO / "tests/configs/tiny.yaml"), "--config", f"inner_kernel={kernel}", cwd=workdir,
                       env={"MULTIARG_DATA_MIRROR": str(mirror)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logs = {p: p.read_text() for p in (workdir / "logs").rglob("*.log")}
    assert len(logs) >= 7 and any("/dac/" in p.as_posix() for p in logs)
    assert not [p for p, text in logs.items() if "cannot run" in text]
    models = [workdir / t for t in (f"{run}/session3/model.pt", f"{rnn}/model.pt", f"{run}/adversarial/model.pt",
                                    "results/runs/mnist/mlp/dac/seed0/session2/model.pt")]
    # every epoch on this machine's device: one kind of arithmetic, as no job was resumed elsewhere
    here = rounding_of(resolve_device("auto"))
    assert [load_torch(m)["arithmetic"] for m in models] == [{"inner_kernel": kernel, "compile": "none",
                                                                  "tf32": ["conv"], "eager_fallback": False,
                                                                  "ran_on": [here]}] * 4


def test_every_network_rule_of_the_workflow_runs_on_the_chunked_kernel(tmp_path, mirror):
    network_rules_run_on(tmp_path, mirror, "chunked")


def test_workflow_passes_snakemake_lint(tmp_path):
    result = snakemake("--lint", cwd=tmp_path)
    assert result.returncode == 0 and "good condition" in result.stdout + result.stderr, result.stdout


@pytest.mark.e2e
def test_a_killed_job_is_retried_resumes_and_leaves_other_outputs_alone(tmp_path, mirror):
    """A training process killed under Snakemake (as a node failure would) fails that attempt; with
    --retries the job runs again, resumes from its checkpoint and finishes, and other jobs' outputs
    are neither rewritten nor corrupted."""
    import time

    longer = tmp_path / "longer.yaml"  # long enough to be killed mid-run
    longer.write_text("train:\n  session2_epochs: 40\n  patience: 100\n")
    tiny = [str(REPO / "config.yaml"), str(REPO / "tests" / "configs" / "tiny.yaml"), str(longer)]
    env = {**os.environ, "MULTIARG_DATA_MIRROR": str(mirror)}
    other = "results/runs/mnist/mlp/relu/seed1/session2/model.pt"
    first = snakemake("--cores", "2", other, "--configfile", *tiny, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    before = (tmp_path / other).stat().st_mtime_ns, (tmp_path / other).read_bytes()

    run = tmp_path / "results/runs/mnist/mlp/relu/seed0/session2"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "1", "--retries", "1", str(run.relative_to(tmp_path) / "model.pt"), other, "--configfile",
           *tiny]
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.1)
    killed = subprocess.run(["pkill", "-KILL", "-f", "--", f"--out-dir {run.relative_to(tmp_path)} "])
    out, _ = job.communicate(timeout=600)
    assert killed.returncode == 0 and job.returncode == 0, out[-3000:]
    assert "Error in rule train_session2" in out, out[-3000:]  # the first attempt failed, the retry finished
    assert (run / "model.pt").exists() and not (run / "checkpoint.pt").exists()
    with open(run / "metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 40
    assert ((tmp_path / other).stat().st_mtime_ns, (tmp_path / other).read_bytes()) == before
