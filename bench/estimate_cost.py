"""Device-hours of ``snakemake all`` for a config, from per-epoch times measured here at that config's scale.

    python bench/estimate_cost.py                                  # config.yaml (paper scale), this device
    python bench/estimate_cost.py --inner-kernel fused-bf16        # with the fused kernels (CUDA)
    python bench/estimate_cost.py --compile reduce-overhead        # training compiled, with CUDA graphs
    python bench/estimate_cost.py --configfile workflow/configs/demo.yaml --repeats 1
    python bench/estimate_cost.py --configfile workflow/configs/mnist-mlp.yaml --threads 2  # every step on 2 threads
    python bench/estimate_cost.py --from RECORD --epoch-fraction 0.4 --out FILE   # a record again, nothing timed

Snakemake's dry run lists every job of the DAG. For each kind of network in it (dataset x arch x activation,
and the recurrent nets) this script times, on this device, one training step, one evaluation batch and one
forward + backward to the input (what PGD and AutoAttack cost per iteration) at the config's widths and batch
sizes, with the CPU threads its jobs run with (their rule's ``threads``, capped at this machine's cores; on a GPU,
where they hardly matter, one), unless ``--threads`` says otherwise, and composes each job's time from them:

- sessions II/III and recurrent nets: ``epochs x (train batches x step + (val + test batches) x evaluation)``;
- adversarial training: each training batch adds ``steps`` PGD iterations, each robust evaluation batch too;
- AutoAttack (standard, L-inf, or the config's subset): APGD-CE 100 iterations on every image, then APGD-T
  (9 x 100), FAB-T (9 x 100, two gradients each) and Square (5000 forward queries) on the ``--robust-fraction``
  still unbroken;
- CIFAR-10-C: 15 corruptions x 5 severities + the clean set, forward only; collecting inner-net inputs: one test pass.
  These scale per image from the evaluation batch's times;
- session I: its steps on the inner net alone;
- under the config's ``compile``, training jobs (not session I) take their times from the compiled network, and
  each pays its compilation once per kind of call it makes (step, evaluation, PGD's gradients);
- every job besides: its start-up (``bench/startup_probe.py``: the median of ``--startup-repeats`` fresh processes,
  timed whole, with the DAG's first learned-activation network; evaluation jobs build no optimizer, so they start
  sooner; under the config's ``job_server``, as that server starts a job: the probe's work in a process forked
  after the server's imports, plus a command's hand-over to a real server) and, except session I, reading and
  checking its prepared dataset (a file of that size, as ``load_prepared`` reads it).

On CUDA with a fused inner-net kernel, every network first runs its calls once in a pool of processes
(:func:`common.compile_ahead`), so the fused kernels are compiled side by side and the timing finds them cached, as
every job after the first of its kind does in a DAG. Epochs are the config's maxima times ``--epoch-fraction``
(1 = the upper bound: no early stop). Data preparation, analyses, tables and figures run on CPUs and are listed, not
timed. Besides the hours per rule, the record gives them per kind of job (rule and network) and the share of
their maximum epochs the training jobs may average for the total to stay within ``--within`` hours. Writes
``bench/results/estimate-<device>.json`` (``estimate-<device>-compile-<mode>.json`` under a compile mode).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path

import torch
from common import (ROOT, attempt, best_of, compile_ahead, device, environment, load_config, outer_net,
                    outer_options, seconds_per_call, write)

from multiarg import jobserver
from multiarg.activations import KERNELS, ActivationSpec, InnerNet, set_kernel
from multiarg.corruptions import CORRUPTIONS, SEVERITIES
from multiarg.data import COUNTS, SHAPES, load_prepared, manifest_path
from multiarg.io import save_torch, sha256, write_json
from multiarg.rnn_study import RNNConfig
from multiarg.runtime import set_tf32
from multiarg.train import COMPILE_MODES, compiled, frozen, set_compile, train_step

# AutoAttack's standard L-inf attacks: (gradients, forward queries) per image. APGD-T and FAB-T try 9 target
# classes of 100 iterations; FAB needs two gradients per iteration; Square makes 5000 queries.
AA_COST = {"apgd-ce": (100, 0), "apgd-t": (900, 0), "fab-t": (1800, 0), "square": (0, 5000)}
EVALUATION_RULES = {"collect_inputs", "eval_cifar10c", "autoattack"}  # the rest train: they build an optimizer
FIT_RULES = {"train_session2", "train_session3", "train_rnn", "train_adversarial"}  # under the config's `compile`
TIMED_RULES = {"pretrain_inner"} | FIT_RULES | EVALUATION_RULES
CPU_RULES = {"prepare_data", "param_table", "cifar10c", "analyze_nonlinearities", "fig4", "fig5", "fig7_fig8",
             "fig9", "cifar10c_table", "table1", "rnn_table", "fig_rnn", "summary_table", "fig_compare", "fig_versus",
             "claims_table", "all"}


def dag_jobs(configfile: str | None, cores: int | None = None) -> list[tuple[str, dict, int]]:
    """Every job of ``snakemake all --cores cores`` (default: this machine's) as (rule, wildcards, threads), from a
    forced dry run: a job's threads are its rule's, capped at the cores, as Snakemake gives them."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", str(cores or os.cpu_count()), "all"]
    out = subprocess.run(cmd + (["--configfile", configfile] if configfile else []), cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    jobs, rule = [], None
    for line in out.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            rule = m[1]
            jobs.append((rule, {}, 1))  # a dry run names a job's threads only where they exceed one
        elif rule and (m := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs[-1][1].update(kv.split("=", 1) for kv in m[1].split(", "))
        elif rule and (m := re.match(r"^threads: (\d+)$", line.strip())):
            jobs[-1] = (*jobs[-1][:2], int(m[1]))
    return jobs


class Timer:
    """Measured seconds per batch of one network: a training step, an evaluation, a gradient to the input
    (``seconds``); for a network ``fit`` trains, under a compile mode (``multiarg.train.set_compile``), the same
    through the compiled network as training runs them (``fit_seconds``), and the seconds each took to compile
    (``compile_seconds``: its first call less a later one). Otherwise ``fit_seconds`` is ``seconds``."""

    def __init__(self, model: torch.nn.Module, shape: tuple, batch: int, eval_batch: int, dev, repeats: int,
                 fit: bool = True):
        model = model.to(dev)
        self.seconds = self._time(self._calls(model, model, shape, batch, eval_batch, dev), repeats, dev)[0]
        self.fit_seconds, self.compile_seconds = self.seconds, {}
        if fit and (fit_model := compiled(model)) is not model:
            # as in a job of its own: Dynamo compiles each network afresh, where in one process the networks share
            # OuterNet.forward's code, and after recompile_limit of them it would run the rest eager, uncompiled
            torch._dynamo.reset()
            calls = self._calls(fit_model, model, shape, batch, eval_batch, dev)
            self.fit_seconds, first = self._time(calls, repeats, dev)
            self.compile_seconds = {name: max(0.0, first[name] - self.fit_seconds[name]) for name in calls}

    @staticmethod
    def _calls(model, params, shape: tuple, batch: int, eval_batch: int, dev) -> dict:
        optimizer = torch.optim.Adam(params.parameters(), lr=1e-3)
        x, y = torch.rand(batch, *shape, device=dev), torch.randint(0, 10, (batch,), device=dev)
        xe = torch.rand(eval_batch, *shape, device=dev)
        ye = torch.randint(0, 10, (eval_batch,), device=dev)

        def evaluate():
            model.eval()
            with torch.no_grad():
                model(xe)

        def input_gradient(inputs, labels):  # as PGD and AutoAttack differentiate: the weights frozen
            model.eval()
            inputs = inputs.clone().requires_grad_()
            with frozen(params):
                torch.autograd.grad(torch.nn.functional.cross_entropy(model(inputs), labels), inputs)

        def step():
            model.train()
            train_step(model, optimizer, x, y)

        def regression_step():  # session I fits the inner net to a map by mean squared error
            loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), x[:, 0])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        if len(shape) == 1:
            return {"step": regression_step}
        return {"step": step, "eval": evaluate, "grad": partial(input_gradient, x, y),
                "eval_grad": partial(input_gradient, xe, ye)}

    @staticmethod
    def _time(calls: dict, repeats: int, dev) -> tuple[dict, dict]:
        """Best seconds per call of each, and the seconds of its first call (warm-up, compilation)."""
        first = {name: seconds_per_call(fn, 1, dev) for name, fn in calls.items()}
        return best_of(calls, repeats, 1, dev), first


def _batches(n: int, size: int) -> int:
    return math.ceil(n / size)


def job_dataset(rule: str, w: dict) -> str | None:
    """The prepared dataset a job reads (session I reads none)."""
    return None if rule == "pretrain_inner" else "mnist" if rule == "train_rnn" else w["dataset"]


def job_seconds(rule: str, w: dict, config: dict, timer, args) -> float:
    """Seconds of one job from its network's measured batch times."""
    if rule not in TIMED_RULES:
        raise ValueError(f"no cost model for rule {rule!r}")
    d, t = config["data"], config["train"]
    if rule == "pretrain_inner":
        return config["pretrain"]["steps"] * timer.seconds["step"]
    dataset = job_dataset(rule, w)
    full_train, full_test = COUNTS[dataset]
    n_train = min(full_train - d["val_size"], d["train_limit"] or math.inf)
    n_test = min(full_test, d["test_limit"] or math.inf)
    s, eval_batch = timer.fit_seconds if rule in FIT_RULES else timer.seconds, t["eval_batch_size"]
    val_batches, test_batches = _batches(d["val_size"], eval_batch), _batches(n_test, eval_batch)
    evaluation = (val_batches + test_batches) * s["eval"]  # every epoch
    if rule in ("train_session2", "train_session3", "train_rnn"):
        epochs = {"train_session2": t["session2_epochs"], "train_session3": t["session3_epochs"],
                  "train_rnn": config["rnn"]["max_epochs"]}[rule]
        return epochs * args.epoch_fraction * (_batches(n_train, t["batch_size"]) * s["step"] + evaluation)
    if rule == "train_adversarial":
        adv = config["robustness"]["adversarial"]
        steps = adv[dataset]["steps"]
        n_adv = min(n_train, adv["train_limit"] or math.inf)
        attacked = val_batches * adv["robust_eval"] + test_batches * adv["robust_test"]
        robust = evaluation + attacked * steps * s["eval_grad"]
        per_epoch = _batches(n_adv, t["batch_size"]) * (s["step"] + steps * s["grad"]) + robust
        return adv["max_epochs"] * args.epoch_fraction * per_epoch
    per_image = {k: s[k] / eval_batch for k in ("eval", "eval_grad")}
    if rule == "collect_inputs":
        return n_test * per_image["eval"]
    if rule == "eval_cifar10c":
        n = min(n_test, config["robustness"]["cifar10c"]["test_limit"] or math.inf)
        return (1 + len(CORRUPTIONS) * len(SEVERITIES)) * n * per_image["eval"]
    if rule == "autoattack":  # the last timed rule
        aa = config["robustness"]["autoattack"]
        n = min(n_test, aa["test_limit"] or math.inf)
        seconds = 0.0
        for i, attack in enumerate(aa["attacks"] or AA_COST):  # only images unbroken so far meet a later attack
            gradients, queries = AA_COST[attack]
            share = 1.0 if i == 0 else args.robust_fraction
            seconds += share * n * (gradients * per_image["eval_grad"] + queries * per_image["eval"])
        return seconds


def compile_seconds(rule: str, config: dict, timer) -> float:
    """Seconds a job spends compiling its network (``compile`` in the config): once for each kind of call it makes
    through it. A lower bound: a batch of another size (an epoch's last) compiles again."""
    if rule not in FIT_RULES:
        return 0.0
    adv = config["robustness"]["adversarial"]
    attacked = adv["robust_eval"] or adv["robust_test"]
    calls = ("step", "eval") + (("grad",) + ("eval_grad",) * attacked if rule == "train_adversarial" else ())
    return sum(timer.compile_seconds.get(name, 0.0) for name in calls)


def startup_seconds(config: dict, key: tuple, kind: str, dev, kernel: str, repeats: int,
                    ending: str = "freeze", handover: float | None = None) -> dict[str, float]:
    """Median seconds of ``repeats`` fresh processes of ``bench/startup_probe.py`` (``kind`` "train" or "evaluate";
    ``ending`` as a job's, or "collect") for the outer network ``key``: in all (``total``) and in each of the probe's
    phases, the interpreter's own start and exit under ``interpreter``. With a ``handover`` (seconds, from
    :func:`handover_seconds`) the phases are timed as the job server runs a job, forked from a process that has
    imported everything, and ``total`` is their sum and the hand-over's."""
    _, dataset, arch, activation = key
    spec = {"kind": kind, "kernel": kernel, "device": str(dev), "dataset": dataset, "activation": activation,
            "options": outer_options(config, arch, activation), "exit": ending, "forked": handover is not None}
    cmd = [sys.executable, str(ROOT / "bench" / "startup_probe.py"), json.dumps(spec)]
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        total = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"start-up probe failed ({' '.join(cmd)}): {done.stderr[-2000:]}")
        phases = json.loads(done.stdout.splitlines()[-1])
        if handover is None:
            runs.append({"total": total, **phases, "interpreter": total - sum(phases.values())})
        else:
            runs.append({"total": handover + sum(phases.values()), **phases, "handover": handover})
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def handover_seconds(repeats: int) -> float:
    """Median seconds of ``python -m multiarg --help`` handed to a job server (``multiarg.jobserver``): what a forked
    job's start costs beyond its own work (the client's interpreter, the hand-over, the fork, the exit)."""
    with tempfile.TemporaryDirectory() as folder:
        server = jobserver.start(str(Path(folder) / "jobserver.log"))
        try:
            times = []
            for _ in range(repeats + 1):  # the first waits while the server imports
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "multiarg", "--help"], capture_output=True, text=True,
                                      env=dict(os.environ))
                times.append(time.perf_counter() - start)
                if done.returncode or jobserver.FORKED not in done.stderr:
                    raise RuntimeError(f"the job server did not run the hand-over probe: {done.stderr[-2000:]}")
        finally:
            jobserver.stop(server)
    return statistics.median(times[1:])


def load_seconds(dataset: str, repeats: int) -> float:
    """Best time of :func:`multiarg.data.load_prepared` (checksum, then load) on a file of ``dataset``'s size."""
    (n_train, n_test), shape = COUNTS[dataset], SHAPES[dataset][0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{dataset}.pt"
        save_torch({"train_x": torch.zeros(n_train, *shape, dtype=torch.uint8),
                    "train_y": torch.zeros(n_train, dtype=torch.int64),
                    "test_x": torch.zeros(n_test, *shape, dtype=torch.uint8),
                    "test_y": torch.zeros(n_test, dtype=torch.int64)}, path)
        write_json({"sha256": sha256(path)}, manifest_path(path))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            load_prepared(path)
            times.append(time.perf_counter() - start)
    return min(times)


def measure_overhead(config: dict, networks: list[tuple], datasets: set[str], dev, kernel: str,
                     repeats: int, job_server: bool = False) -> dict:
    """Start-up seconds of a training and of an evaluation job (``startup_s``; by phase in ``startup_phases_s``),
    probed with the first outer network of ``networks`` that has a learned activation (its start loads the inner
    net's kernels) or else the first outer one, as fresh processes or, with ``job_server``, as the job server starts
    jobs; and load seconds of each of ``datasets``."""
    outer = sorted((key for key in networks if key[0] == "outer"), key=lambda key: not key[3].startswith("arg"))

    def measure(handover):
        return {kind: startup_seconds(config, outer[0], kind, dev, kernel, repeats, handover=handover)
                if outer else {"total": 0.0} for kind in ("train", "evaluate")}

    server_error = None
    try:  # the DAG runs its jobs as their own processes where the server cannot fork them: so does the estimate
        phases = measure(handover_seconds(repeats)) if job_server and outer else measure(None)
    except RuntimeError as err:
        server_error, phases = f"{err}"[-1000:], measure(None)
    return {"startup_s": {kind: p["total"] for kind, p in phases.items()}, "startup_phases_s": phases,
            "startup_network": "/".join(outer[0]) if outer else None,
            "job_server": job_server and server_error is None, "job_server_error": server_error,
            "load_s": {d: load_seconds(d, repeats) for d in sorted(datasets)}}


def fixed_seconds(rule: str, w: dict, overhead: dict) -> float:
    """A job's seconds outside its batches: start-up, and loading its dataset."""
    dataset = job_dataset(rule, w)
    startup = overhead["startup_s"]["evaluate" if rule in EVALUATION_RULES else "train"]
    return startup + (overhead["load_s"][dataset] if dataset else 0.0)


def network_key(rule: str, w: dict) -> tuple:
    if rule == "pretrain_inner":
        return ("inner", w["activation"])
    if rule == "train_rnn":
        return ("rnn", w["activation"])
    return ("outer", w["dataset"], w["arch"], w["activation"])


def network_name(key: tuple, threads: int) -> str:
    """A timed network's name in a record: its key, and the CPU threads it was timed with."""
    return f"{'/'.join(key)}@{threads}"


def timing_threads(record: dict) -> int | None:
    """The CPU threads a record's timings took (None: each job's own). Records from before each job's own threads
    timed every network with the process's, ``cpu_threads``."""
    return record["threads"] if "threads" in record else record.get("cpu_threads")


def parse_network_name(name: str, threads: int) -> tuple[tuple, int]:
    """:func:`network_name` read back; a name without threads (a record from before they were named) was timed with
    ``threads``."""
    key, _, timed = name.partition("@")
    return tuple(key.split("/")), int(timed) if timed else threads


def with_threads(threads: int, fn, *args):
    """``fn(*args)`` with PyTorch on ``threads`` CPU threads, the caller's setting restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def build_timer(key: tuple, config: dict, dev, repeats: int) -> Timer:
    """The network ``key`` timed at the config's sizes (session I's inner net trains outside ``fit``: it never
    compiles)."""
    m, t = config["model"], config["train"]
    inner = (m["inner_hidden"], m["inner_depth"])
    if key[0] == "inner":
        p = config["pretrain"]
        net = InnerNet(ActivationSpec.parse(key[1]).n_args, *inner)
        return Timer(net.net, (net.n_args,), p["batch_size"], p["batch_size"], dev, repeats, fit=False)
    if key[0] == "rnn":
        r = config["rnn"]
        net = RNNConfig(key[1], r["hidden"], r["sequence"], inner_hidden=inner[0], inner_depth=inner[1]).build()
        return Timer(net, SHAPES["mnist"][0], t["batch_size"], t["eval_batch_size"], dev, repeats)
    _, dataset, arch, activation = key
    return Timer(outer_net(config, dataset, arch, activation), SHAPES[dataset][0], t["batch_size"],
                 t["eval_batch_size"], dev, repeats)


def _time_once(key: tuple, config: dict, kernel: str) -> None:
    """A network's calls once each on the inner-net ``kernel`` (uncompiled, as a fresh process is): a
    :func:`common.compile_ahead` job that leaves its fused kernels in Triton's cache, as the first job of a kind
    leaves them for the rest of a DAG."""
    set_kernel(kernel)
    build_timer(key, config, device(), 1)


def timed_network(rule: str, w: dict, threads: int, args) -> tuple[tuple, int]:
    """The network a job runs and the CPU threads its timing takes: ``--threads`` if given, else the job's own."""
    return network_key(rule, w), args.threads or threads


def estimate(config: dict, jobs: list[tuple[str, dict, int]], dev, args, overhead: dict | None = None) -> dict:
    """Hours per rule, each job's :func:`fixed_seconds` included (and also given apart as ``fixed_hours``) under
    ``overhead``, measured here after the networks are timed if not given (so that, as in a DAG whose first job
    has filled Triton's cache, start-up compiles nothing). Each network is timed with every count of threads its
    jobs take (:func:`timed_network`). A network that cannot be timed here is listed under ``failed`` and its jobs
    under ``jobs_not_timed``; the total then covers the others only."""
    timed = dict.fromkeys(timed_network(*job, args) for job in jobs if job[0] not in CPU_RULES)
    ahead = None
    if dev.type == "cuda" and args.inner_kernel.startswith("fused"):
        ahead = compile_ahead({"/".join(k): partial(_time_once, k, config, args.inner_kernel)
                               for k in dict.fromkeys(key for key, _ in timed)})
    timers, failed = attempt({(key, threads): partial(with_threads, threads, build_timer, key, config, dev,
                                                      args.repeats) for key, threads in timed})
    if overhead is None:
        datasets = {job_dataset(rule, w) for rule, w, _ in jobs if rule not in CPU_RULES} - {None}
        overhead = measure_overhead(config, list(dict.fromkeys(key for key, _ in timers)), datasets, dev,
                                    args.inner_kernel, args.startup_repeats, config["job_server"])
    return {**compose(config, jobs, timers, overhead, args), "compile_ahead": ahead,
            "failed": {network_name(*k): e for k, e in failed.items()},
            "networks": {network_name(*k): t.seconds for k, t in timers.items()},
            "compiled_networks": {network_name(*k): {"seconds": t.fit_seconds, "compile_seconds": t.compile_seconds}
                                  for k, t in timers.items() if t.compile_seconds}}


def compose(config: dict, jobs: list[tuple[str, dict, int]], timers: dict, overhead: dict, args) -> dict:
    """The hours of ``jobs`` from the networks' measured times (``timers``, by :func:`timed_network`): per rule, per
    kind of job (rule and network, over seeds; ``kinds``) and in all, with ``epoch_hours``, the part that scales
    with the epochs run (the training rules' batches: the rest is start-up, data, compilation and evaluation jobs)."""
    per_rule, fixed, missing, kinds = Counter(), Counter(), Counter(), {}
    epoch_seconds = 0.0
    for rule, w, threads in jobs:
        if rule in CPU_RULES:
            continue
        key, threads = timed_network(rule, w, threads, args)
        timer = timers.get((key, threads))
        if timer is None:
            missing[rule] += 1
            continue
        batches = job_seconds(rule, w, config, timer, args)
        outside_batches = fixed_seconds(rule, w, overhead) + compile_seconds(rule, config, timer)
        epoch_seconds += batches * (rule in FIT_RULES)
        fixed[rule] += outside_batches
        per_rule[rule] += batches + outside_batches
        kind = kinds.setdefault(f"{rule} {'/'.join(key[1:])}", {"jobs": 0, "hours": 0.0})
        kind["jobs"] += 1
        kind["hours"] += (batches + outside_batches) / 3600
    counts = Counter(rule for rule, *_ in jobs)
    return {"hours_total": sum(per_rule.values()) / 3600, "epoch_hours": epoch_seconds / 3600, "overhead": overhead,
            "rules": {rule: {"jobs": counts[rule], "hours": sec / 3600, "fixed_hours": fixed[rule] / 3600}
                      for rule, sec in per_rule.most_common()},
            "kinds": dict(sorted(kinds.items(), key=lambda item: -item[1]["hours"])),
            "cpu_rules_not_timed": {rule: n for rule, n in counts.items() if rule in CPU_RULES},
            "jobs_not_timed": dict(missing)}


def epoch_fraction_within(result: dict, hours: float) -> float | None:
    """The largest share of their maximum epochs the training jobs may run (on average, each job weighted by its
    cost) for ``result``'s total to stay within ``hours``: its ``epoch_hours`` scale with the epochs. None if the
    rest alone exceeds ``hours``."""
    per_unit = result["epoch_hours"] / result["epoch_fraction"]
    fraction = (hours - (result["hours_total"] - result["epoch_hours"])) / per_unit if per_unit else math.inf
    return None if fraction < 0 else min(fraction, 1.0)


class Recorded:
    """A :class:`Timer`'s measurements as an estimate's record keeps them."""

    def __init__(self, seconds: dict, compiled: dict | None = None):
        self.seconds = seconds
        self.fit_seconds = compiled["seconds"] if compiled else seconds
        self.compile_seconds = compiled["compile_seconds"] if compiled else {}


def recompose(record: dict, args) -> dict:
    """``record``'s estimate composed again from the times it measured, under ``args``' epoch and robust fractions:
    nothing is measured, so another cost assumption costs no device time."""
    record = {"compile": "none", **record}  # records older than the compile option ran eager
    for option in ("inner_kernel", "compile"):
        if getattr(args, option) not in (None, record[option]):
            raise SystemExit(f"--{option.replace('_', '-')} {getattr(args, option)}: the record was timed with "
                             f"{record[option]}; times of another setting have to be measured")
    configfile = None if record["configfile"] == "config.yaml" else record["configfile"]
    config = load_config(configfile)
    config["compile"] = record["compile"]
    compiled = record.get("compiled_networks", {})
    args.threads = timing_threads(record)
    timers = {parse_network_name(name, args.threads): Recorded(seconds, compiled.get(name))
              for name, seconds in record["networks"].items()}
    keep = ("device", "torch", "triton", "cuda", "python", "cpu_threads", "triton_interpreter", "configfile", "scale",
            "inner_kernel", "compile", "compile_ahead", "failed", "networks", "compiled_networks", "dag_cores")
    return {"command": " ".join(["python", *sys.argv]), **{k: record.get(k) for k in keep}, "threads": args.threads,
            # the measurement itself, however often its times were composed again since
            "recomposed_from": record.get("recomposed_from") or {
                "command": record["command"], "epoch_fraction": record["epoch_fraction"],
                "robust_fraction": record["robust_fraction"]},
            "epoch_fraction": args.epoch_fraction, "robust_fraction": args.robust_fraction,
            **compose(config, dag_jobs(configfile, record.get("dag_cores")), timers, record["overhead"], args)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="overrides on config.yaml, as for snakemake")
    p.add_argument("--inner-kernel", default=None, choices=KERNELS, help="default: the config's inner_kernel")
    p.add_argument("--compile", default=None, choices=COMPILE_MODES, help="default: the config's compile")
    p.add_argument("--epoch-fraction", type=float, default=1.0, help="share of the maximum epochs run")
    p.add_argument("--robust-fraction", type=float, default=1.0,
                   help="share of images APGD-CE leaves unbroken (1 = upper bound)")
    p.add_argument("--repeats", type=int, default=5, help="calls of each batch a timing averages")
    p.add_argument("--startup-repeats", type=int, default=3, help="fresh processes each start-up time is the median of")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads every timing uses (default: each job's own, its rule's threads (1; 2 for "
                        "AutoAttack and collecting inputs) capped at this machine's cores, as snakemake --cores all "
                        "runs it; on a GPU, 1)")
    p.add_argument("--within", type=float, default=6.0,
                   help="device-hours to report the largest average share of maximum epochs for (issue 6: 6)")
    p.add_argument("--from", dest="record", default=None,
                   help="compose again from this record's measured times (with --out; measures nothing)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if not (0 < args.epoch_fraction <= 1 and 0 <= args.robust_fraction <= 1):
        p.error("--epoch-fraction must lie in (0, 1] and --robust-fraction in [0, 1]")
    if args.record:
        if not args.out or args.configfile or args.threads:
            p.error("--from takes --out, and the record's own config and threads")
        result = recompose(json.loads(Path(args.record).read_text()), args)
    else:
        dev, cores = device(), os.cpu_count()
        if dev.type == "cuda" and not args.threads:
            args.threads = 1  # a step's time there is the GPU's: one timing a network, on the thread most jobs take
        config = load_config(args.configfile)
        args.inner_kernel = args.inner_kernel or config["inner_kernel"]
        set_kernel(args.inner_kernel)
        config["compile"] = args.compile or config["compile"]
        set_compile(config["compile"])
        set_tf32(config["tf32"])
        result = {**environment(dev), "configfile": args.configfile or "config.yaml", "scale": config["scale"],
                  "inner_kernel": args.inner_kernel, "compile": config["compile"], "threads": args.threads,
                  "dag_cores": cores, "epoch_fraction": args.epoch_fraction, "robust_fraction": args.robust_fraction,
                  **estimate(config, dag_jobs(args.configfile, cores), dev, args)}
        set_kernel("eager")
        set_compile("none")
        set_tf32(("conv",))
    result["epoch_fraction_within"] = {"hours": args.within, "fraction": epoch_fraction_within(result, args.within)}
    report(result)
    compiled_name = f"-compile-{result['compile']}" * (result["compile"] != "none")
    print("wrote", write(result, f"estimate-{'cpu' if result['cuda'] is None else 'cuda'}{compiled_name}", args.out))
    return result


def report(result: dict, top: int = 8) -> None:
    o = result["overhead"]
    print(f"per job: start-up {o['startup_s']['train']:.1f} s (training) or {o['startup_s']['evaluate']:.1f} s "
          "(evaluation), loading data " + ", ".join(f"{d} {s:.2f} s" for d, s in o["load_s"].items()))
    for kind, phases in o["startup_phases_s"].items():
        print(f"  {kind} start-up: " + ", ".join(f"{name} {s:.2f} s" for name, s in phases.items()))
    for network, c in result["compiled_networks"].items():
        print(f"  {network} compiles in " + ", ".join(f"{k} {v:.1f} s" for k, v in c["compile_seconds"].items()))
    for rule, v in result["rules"].items():
        print(f"{rule:20s} {v['jobs']:5d} jobs {v['hours']:10.2f} h (start-up and data {v['fixed_hours']:.2f} h)")
    print(f"{'total':20s} {sum(v['jobs'] for v in result['rules'].values()):5d} jobs "
          f"{result['hours_total']:10.2f} h on {result['device']}, "
          f"{result['threads'] or 'each job its own'} CPU threads (+ CPU steps: "
          f"{sum(result['cpu_rules_not_timed'].values())} jobs), at {result['epoch_fraction']:g} of the maximum "
          f"epochs: {result['epoch_hours']:.2f} h of it in training epochs")
    print(f"the {top} costliest kinds of job:")
    for kind, v in list(result["kinds"].items())[:top]:
        print(f"  {kind:44s} {v['jobs']:3d} jobs {v['hours']:10.2f} h ({v['hours'] / result['hours_total']:.0%})")
    within = result["epoch_fraction_within"]
    print(f"within {within['hours']:g} h: " + ("not even with no epochs" if within["fraction"] is None else
                                              f"if training runs average {within['fraction']:.3g} of their maximum "
                                              "epochs or fewer"))
    for network, err in result["failed"].items():
        print(f"not timed: {network} ({err}); without its jobs {result['jobs_not_timed']}")


if __name__ == "__main__":
    main()
