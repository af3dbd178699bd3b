"""The device-hours estimator (bench/estimate_cost.py): the DAG it reads, its cost model, its timings."""
import json
import math
import os
import sys
from argparse import Namespace
from collections import Counter
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
estimate_cost = pytest.importorskip("estimate_cost")
TINY = str(REPO / "tests" / "configs" / "tiny.yaml")


class FakeTimer:
    seconds = fit_seconds = {"step": 1.0, "eval": 10.0, "grad": 2.0, "eval_grad": 20.0}
    compile_seconds = {}


class CompiledTimer(FakeTimer):
    fit_seconds = {"step": 0.5, "eval": 5.0, "grad": 1.0, "eval_grad": 10.0}
    compile_seconds = {"step": 30.0, "eval": 20.0, "grad": 15.0, "eval_grad": 12.0}


NO_OVERHEAD = {"startup_s": {"train": 0.0, "evaluate": 0.0}, "load_s": {"mnist": 0.0}}


def test_the_dag_is_read_job_by_job_with_wildcards_and_threads():
    jobs = estimate_cost.dag_jobs(TINY, cores=4)
    counts = Counter(rule for rule, *_ in jobs)
    config = estimate_cost.load_config(TINY)
    assert counts["all"] == 1 and counts["prepare_data"] == 1
    # tiny: 1 dataset x 1 arch x 6 activations x 2 seeds, plus one arg3 analysis run
    assert counts["train_session2"] == len(config["activations"]) * len(config["seeds"]) + 1
    for rule, w, threads in jobs:
        if rule.startswith("train_session"):
            assert set(w) == {"dataset", "arch", "activation", "seed"} and w["dataset"] == "mnist"
        assert threads == (2 if rule in ("autoattack", "collect_inputs", "prepare_data") else 1)  # each rule's threads
    assert set(counts) <= estimate_cost.CPU_RULES | estimate_cost.TIMED_RULES
    # Snakemake caps a job's threads at the cores it is given
    assert {threads for *_, threads in estimate_cost.dag_jobs(TINY, cores=1)} == {1}


def test_session_and_autoattack_costs_follow_the_config():
    config = estimate_cost.load_config(None)  # paper scale
    args = Namespace(epoch_fraction=0.5, robust_fraction=0.25)
    w = {"dataset": "mnist", "arch": "mlp", "activation": "arg2", "seed": "0"}
    per_epoch = math.ceil(55000 / 128) * 1.0 + (math.ceil(5000 / 1000) + math.ceil(10000 / 1000)) * 10.0
    assert estimate_cost.job_seconds("train_session2", w, config, FakeTimer, args) == pytest.approx(
        200 * 0.5 * per_epoch)
    # standard AutoAttack on 10 000 images: APGD-CE on all, the rest on a quarter; per image = batch time / 1000
    aa = 10000 * (100 * 0.02 + 0.25 * ((900 + 1800) * 0.02 + 5000 * 0.01))
    assert estimate_cost.job_seconds("autoattack", w, config, FakeTimer, args) == pytest.approx(aa)
    assert estimate_cost.job_seconds("eval_cifar10c", {**w, "dataset": "cifar10"}, config, FakeTimer, args) \
        == pytest.approx(76 * 10000 * 0.01)  # 15 corruptions x 5 severities and the clean set
    with pytest.raises(ValueError, match="no cost model"):
        estimate_cost.job_seconds("fig4", {}, config, FakeTimer, args)


def test_adversarial_training_pays_one_gradient_per_pgd_step():
    config = estimate_cost.load_config(None)
    args = Namespace(epoch_fraction=1.0, robust_fraction=1.0)
    w = {"dataset": "cifar10", "arch": "cnn", "activation": "relu", "seed": "0"}
    evaluation = (5 + 10) * 10.0
    per_epoch = math.ceil(45000 / 128) * (1.0 + 7 * 2.0) + evaluation + 7 * 20.0 * 5  # validation under PGD
    assert estimate_cost.job_seconds("train_adversarial", w, config, FakeTimer, args) == pytest.approx(
        100 * per_epoch)
    config["robustness"]["adversarial"]["robust_test"] = True  # the 10 test batches too
    assert estimate_cost.job_seconds("train_adversarial", w, config, FakeTimer, args) == pytest.approx(
        100 * (per_epoch + 7 * 20.0 * 10))


def test_compiled_training_takes_the_compiled_times_and_pays_its_compilation(monkeypatch):
    config, jobs = estimate_cost.load_config(TINY), estimate_cost.dag_jobs(TINY)
    args = Namespace(epoch_fraction=1.0, robust_fraction=1.0, repeats=1, threads=None)
    w = {"dataset": "mnist", "arch": "mlp", "activation": "arg2", "seed": "0"}
    for rule in ("train_session2", "train_adversarial"):  # every time of a training job halves
        assert estimate_cost.job_seconds(rule, w, config, CompiledTimer, args) == pytest.approx(
            estimate_cost.job_seconds(rule, w, config, FakeTimer, args) / 2)
    # evaluation jobs do not compile: eager times, nothing to pay
    assert estimate_cost.job_seconds("autoattack", w, config, CompiledTimer, args) == pytest.approx(
        estimate_cost.job_seconds("autoattack", w, config, FakeTimer, args))
    assert estimate_cost.compile_seconds("train_session3", config, CompiledTimer) == 50.0
    robust = config["robustness"]["adversarial"]["robust_eval"]
    assert estimate_cost.compile_seconds("train_adversarial", config, CompiledTimer) == 65.0 + 12.0 * robust
    assert estimate_cost.compile_seconds("autoattack", config, CompiledTimer) == 0.0
    monkeypatch.setattr(estimate_cost, "build_timer", lambda *a: CompiledTimer)
    paid = estimate_cost.estimate(config, jobs, torch.device("cpu"), args, NO_OVERHEAD)
    sessions = paid["rules"]["train_session2"]
    assert sessions["fixed_hours"] * 3600 == pytest.approx(50.0 * sessions["jobs"])


def test_each_compiled_network_is_timed_with_its_own_compilation(compile_mode):
    config = estimate_cost.load_config(TINY)
    compile_mode("default")
    # one process times many networks that share OuterNet.forward's code; past Dynamo's recompile limit (8; 1 here)
    # it would run the later ones eager and report them compiled in no time
    for activation in ("relu", "gamma"):
        with torch._dynamo.config.patch(recompile_limit=1):
            timer = estimate_cost.build_timer(("outer", "mnist", "mlp", activation), config, torch.device("cpu"), 1)
        assert set(timer.fit_seconds) == set(timer.seconds) == set(timer.compile_seconds)
        # Dynamo's tracing alone takes a tenth of a second or more, even where Inductor's cache on disk holds the
        # code (seconds where not), while a frame run eager past the limit took 0.3 ms; a later kind of call may
        # find its graph already compiled for another batch size (Dynamo's dynamic shapes), as in a job
        assert timer.compile_seconds["step"] > 0.05 and max(timer.fit_seconds.values()) < 1.0
        assert min(timer.compile_seconds.values()) >= 0 and min(timer.fit_seconds.values()) > 0
    inner = estimate_cost.build_timer(("inner", "arg2"), config, torch.device("cpu"), repeats=1)
    assert inner.compile_seconds == {} and inner.fit_seconds is inner.seconds  # session I never compiles


def test_every_network_of_the_tiny_dag_is_timed():
    config = estimate_cost.load_config(TINY)
    for key in [("outer", "mnist", "mlp", "arg2"), ("outer", "mnist", "mlp", "dac"), ("rnn", "arg2"),
                ("inner", "arg3")]:
        timer = estimate_cost.build_timer(key, config, torch.device("cpu"), repeats=1)
        assert timer.seconds and all(0 < s < 60 for s in timer.seconds.values())
        assert ("eval_grad" in timer.seconds) == (key[0] != "inner")


def test_a_network_that_cannot_be_timed_is_reported_and_the_rest_estimated(monkeypatch):
    config, jobs = estimate_cost.load_config(TINY), estimate_cost.dag_jobs(TINY)
    broken = ("outer", "mnist", "mlp", "dac")

    def build_timer(key, *args):
        if key == broken:
            raise RuntimeError("no kernel for this")
        return FakeTimer

    monkeypatch.setattr(estimate_cost, "build_timer", build_timer)
    args = Namespace(epoch_fraction=1.0, robust_fraction=1.0, repeats=1, threads=1)
    result = estimate_cost.estimate(config, jobs, torch.device("cpu"), args, NO_OVERHEAD)
    dac_jobs = Counter(rule for rule, w, _ in jobs
                       if w.get("activation") == "dac" and rule not in estimate_cost.CPU_RULES)
    assert result["failed"] == {"outer/mnist/mlp/dac@1": "RuntimeError: no kernel for this"}
    assert result["jobs_not_timed"] == dict(dac_jobs) and dac_jobs["train_session2"] == len(config["seeds"])
    assert result["hours_total"] > 0 and "outer/mnist/mlp/dac@1" not in result["networks"]
    assert "outer/mnist/mlp/relu@1" in result["networks"]


def test_each_network_is_timed_with_the_threads_its_jobs_run_with(monkeypatch):
    config, jobs = estimate_cost.load_config(TINY), estimate_cost.dag_jobs(TINY, cores=2)
    before, timed = torch.get_num_threads(), []

    def build_timer(key, *args):  # a network twice as fast on two threads
        threads = torch.get_num_threads()
        timed.append((key, threads))
        seconds = {name: s / threads for name, s in FakeTimer.seconds.items()}
        return Namespace(seconds=seconds, fit_seconds=seconds, compile_seconds={})

    monkeypatch.setattr(estimate_cost, "build_timer", build_timer)

    def run(threads):
        args = Namespace(epoch_fraction=1.0, robust_fraction=1.0, repeats=1, threads=threads)
        return estimate_cost.estimate(config, jobs, torch.device("cpu"), args, NO_OVERHEAD)

    own = run(None)
    networks = {estimate_cost.network_key(rule, w) for rule, w, _ in jobs if rule not in estimate_cost.CPU_RULES}
    two = {estimate_cost.network_key(rule, w) for rule, w, threads in jobs
           if threads == 2 and rule not in estimate_cost.CPU_RULES}  # AutoAttack's and collecting inputs'
    assert two and sorted(timed) == sorted({(k, 1) for k in networks} | {(k, 2) for k in two})
    assert set(own["networks"]) == {estimate_cost.network_name(*t) for t in timed}
    assert torch.get_num_threads() == before
    # two-thread jobs take the two-thread times, the rest the one-thread times
    timed.clear()
    one = run(1)
    assert {threads for _, threads in timed} == {1} and len(timed) == len(networks)
    for rule in own["rules"]:
        halved = rule in ("autoattack", "collect_inputs")
        assert one["rules"][rule]["hours"] == pytest.approx((1 + halved) * own["rules"][rule]["hours"])


def test_every_job_pays_its_kind_of_start_up_and_all_but_session_one_their_data(monkeypatch):
    config, jobs = estimate_cost.load_config(TINY), estimate_cost.dag_jobs(TINY)
    monkeypatch.setattr(estimate_cost, "build_timer", lambda *args: FakeTimer)
    args = Namespace(epoch_fraction=1.0, robust_fraction=1.0, repeats=1, threads=None)
    bare = estimate_cost.estimate(config, jobs, torch.device("cpu"), args, NO_OVERHEAD)
    overhead = {"startup_s": {"train": 3.0, "evaluate": 1.0}, "load_s": {"mnist": 0.5}}
    paid = estimate_cost.estimate(config, jobs, torch.device("cpu"), args, overhead)
    assert paid["overhead"] == overhead
    for rule, row in paid["rules"].items():
        fixed = row["jobs"] * {"pretrain_inner": 3.0, "autoattack": 1.5, "collect_inputs": 1.5}.get(rule, 3.5)
        assert row["fixed_hours"] * 3600 == pytest.approx(fixed) and bare["rules"][rule]["fixed_hours"] == 0
        assert (row["hours"] - bare["rules"][rule]["hours"]) * 3600 == pytest.approx(fixed)


def test_start_up_is_timed_in_fresh_processes_and_a_failed_probe_says_why():
    config = estimate_cost.load_config(TINY)
    cpu = torch.device("cpu")
    networks = [("inner", "arg2"), ("outer", "mnist", "mlp", "relu"), ("outer", "mnist", "mlp", "arg2")]
    overhead = estimate_cost.measure_overhead(config, networks, {"mnist"}, cpu, "eager", repeats=1)
    # a fresh interpreter imports PyTorch (over half a second) and, with the first optimizer, torch._dynamo
    train, evaluate = overhead["startup_s"]["train"], overhead["startup_s"]["evaluate"]
    assert 0.5 < evaluate < train < 120 and set(overhead["load_s"]) == {"mnist"}
    phases = overhead["startup_phases_s"]
    assert overhead["startup_network"] == "outer/mnist/mlp/arg2"  # the learned one, though listed second
    assert set(phases["train"]) == {"total", "import", "network", "optimizer", "first_step", "interpreter"}
    assert "optimizer" not in phases["evaluate"] and phases["train"]["import"] > 0.5 * phases["train"]["interpreter"]
    assert sum(phases["train"].values()) == pytest.approx(2 * train)  # a single run: its phases add up to it
    assert 0 < overhead["load_s"]["mnist"] < evaluate
    with pytest.raises(RuntimeError, match="start-up probe failed.*nosuch"):
        estimate_cost.startup_seconds(config, ("outer", "mnist", "mlp", "nosuch"), "train", cpu, "eager", repeats=1)


def test_start_up_under_the_job_server_is_timed_as_the_server_starts_a_job():
    config = estimate_cost.load_config(TINY)
    cpu = torch.device("cpu")
    networks = [("outer", "mnist", "mlp", "arg2")]
    overhead = estimate_cost.measure_overhead(config, networks, set(), cpu, "eager", repeats=1, job_server=True)
    assert overhead["job_server"] is True
    for kind, phases in overhead["startup_phases_s"].items():
        assert "interpreter" not in phases and 0 < phases["handover"] < phases["total"]
        assert phases["total"] == pytest.approx(sum(v for k, v in phases.items() if k != "total"))
        assert phases["import"] < 0.1  # everything a job imports is there before the fork
    # the first optimizer finds torch._dynamo imported: no second spent there
    assert overhead["startup_phases_s"]["train"]["optimizer"] < 0.2


def test_hours_are_given_per_kind_of_job_and_the_epochs_share_is_what_scales(monkeypatch):
    config, jobs = estimate_cost.load_config(TINY), estimate_cost.dag_jobs(TINY)
    monkeypatch.setattr(estimate_cost, "build_timer", lambda *args: FakeTimer)
    overhead = {"startup_s": {"train": 3.0, "evaluate": 1.0}, "load_s": {"mnist": 0.5}}
    full, half = (estimate_cost.estimate(config, jobs, torch.device("cpu"),
                                         Namespace(epoch_fraction=f, robust_fraction=1.0, repeats=1, threads=None),
                                         overhead)
                  for f in (1.0, 0.5))
    kinds = full["kinds"]
    assert sum(k["hours"] for k in kinds.values()) == pytest.approx(full["hours_total"])
    assert sum(k["jobs"] for k in kinds.values()) == sum(r["jobs"] for r in full["rules"].values())
    assert kinds["train_session2 mnist/mlp/arg2"]["jobs"] == len(config["seeds"])
    assert list(kinds.values()) == sorted(kinds.values(), key=lambda k: -k["hours"])  # costliest first
    # only the training epochs halve with half the epochs; start-up, data and evaluation jobs do not
    assert half["epoch_hours"] == pytest.approx(full["epoch_hours"] / 2) and full["epoch_hours"] > 0
    assert full["hours_total"] - half["hours_total"] == pytest.approx(full["epoch_hours"] / 2)
    for result in (full, half):
        result["epoch_fraction"] = 1.0 if result is full else 0.5
        rest = result["hours_total"] - result["epoch_hours"]
        # the share of the epochs at which the total meets a budget: from either record, the same
        assert estimate_cost.epoch_fraction_within(result, rest + full["epoch_hours"] / 4) == pytest.approx(0.25)
        assert estimate_cost.epoch_fraction_within(result, rest / 2) is None
        assert estimate_cost.epoch_fraction_within(result, 10 * full["hours_total"]) == 1.0


def test_a_record_is_composed_again_under_other_fractions_without_measuring(monkeypatch, tmp_path):
    config, jobs = estimate_cost.load_config(TINY), estimate_cost.dag_jobs(TINY)
    monkeypatch.setattr(estimate_cost, "build_timer", lambda *args: FakeTimer)
    overhead = {"startup_s": {"train": 3.0, "evaluate": 1.0}, "load_s": {"mnist": 0.5},
                "startup_phases_s": {"train": {"total": 3.0}, "evaluate": {"total": 1.0}}}

    def measured(epochs, robust):
        args = Namespace(epoch_fraction=epochs, robust_fraction=robust, repeats=1, threads=None)
        return {"command": "python bench/estimate_cost.py", "device": "GPU", "configfile": TINY, "compile": "none",
                "inner_kernel": "eager", "epoch_fraction": epochs, "robust_fraction": robust, "threads": None,
                "dag_cores": os.cpu_count(),
                **estimate_cost.estimate(config, jobs, torch.device("cpu"), args, overhead)}

    record, direct, original = tmp_path / "estimate.json", measured(0.3, 0.5), measured(1.0, 1.0)
    record.write_text(json.dumps(original))
    monkeypatch.setattr(estimate_cost, "build_timer", None)  # nothing is timed again
    out = tmp_path / "again.json"
    again = estimate_cost.main(["--from", str(record), "--epoch-fraction", "0.3", "--robust-fraction", "0.5",
                                "--out", str(out)])
    assert again["hours_total"] == pytest.approx(direct["hours_total"]) and again["kinds"] == direct["kinds"]
    assert again["device"] == "GPU" and again["recomposed_from"]["epoch_fraction"] == 1.0
    assert json.loads(out.read_text())["epoch_fraction_within"]["hours"] == 6.0
    twice = estimate_cost.main(["--from", str(out), "--out", str(tmp_path / "twice.json")])
    assert twice["recomposed_from"]["command"] == "python bench/estimate_cost.py"  # the measuring command
    assert twice["hours_total"] == pytest.approx(original["hours_total"])
    with pytest.raises(SystemExit, match="timed with eager"):
        estimate_cost.main(["--from", str(record), "--inner-kernel", "chunked", "--out", str(out)])
    with pytest.raises(SystemExit):  # it writes nothing unless told where
        estimate_cost.main(["--from", str(record)])


def test_a_record_says_the_threads_its_timings_took_and_older_records_their_process_threads():
    assert estimate_cost.timing_threads({"threads": None, "cpu_threads": 2}) is None  # each job its own
    assert estimate_cost.timing_threads({"threads": 1, "cpu_threads": 2}) == 1
    assert estimate_cost.timing_threads({"cpu_threads": 2}) == 2  # before per-job threads
    name = estimate_cost.network_name(("outer", "mnist", "mlp", "arg2"), 2)
    assert name == "outer/mnist/mlp/arg2@2"
    assert estimate_cost.parse_network_name(name, 1) == (("outer", "mnist", "mlp", "arg2"), 2)
    assert estimate_cost.parse_network_name("rnn/arg2", 2) == (("rnn", "arg2"), 2)


def test_timings_use_the_threads_asked_for_and_the_record_says_how_many(monkeypatch, tmp_path):
    before, seen = torch.get_num_threads(), set()

    def timer(*args):
        seen.add(torch.get_num_threads())
        return FakeTimer

    overhead = {**NO_OVERHEAD, "startup_phases_s": {"train": {"total": 0.0}, "evaluate": {"total": 0.0}}}
    monkeypatch.setattr(estimate_cost, "build_timer", timer)
    monkeypatch.setattr(estimate_cost, "measure_overhead", lambda *args: overhead)
    threads = 1 if before > 1 else 2
    record = estimate_cost.main(["--configfile", TINY, "--threads", str(threads), "--out", str(tmp_path / "e.json")])
    assert seen == {threads} and record["threads"] == threads and record["hours_total"] > 0
    assert torch.get_num_threads() == before  # the caller's setting is left as it was
    with pytest.raises(SystemExit):  # a record keeps the threads it was timed with
        estimate_cost.main(["--from", str(tmp_path / "e.json"), "--threads", "1", "--out", str(tmp_path / "f.json")])
