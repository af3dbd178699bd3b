"""Device-hours of ``snakemake all`` for a config, from per-epoch times measured here at that config's scale.

    python bench/estimate_cost.py                                  # config.yaml (paper scale), this device
    python bench/estimate_cost.py --inner-kernel fused-bf16        # with the fused kernels (CUDA)
    python bench/estimate_cost.py --configfile workflow/configs/demo.yaml --repeats 1

Snakemake's dry run lists every job of the DAG. For each kind of network in it (dataset x arch x activation,
and the recurrent nets) this script times, on this device, one training step, one evaluation batch and one
forward + backward to the input (what PGD and AutoAttack cost per iteration) at the config's widths and batch
sizes, and composes each job's time from them:

- sessions II/III and recurrent nets: ``epochs x (train batches x step + (val + test batches) x evaluation)``;
- adversarial training: each training batch adds ``steps`` PGD iterations, each robust evaluation batch too;
- AutoAttack (standard, L-inf, or the config's subset): APGD-CE 100 iterations on every image, then APGD-T
  (9 x 100), FAB-T (9 x 100, two gradients each) and Square (5000 forward queries) on the ``--robust-fraction``
  still unbroken;
- CIFAR-10-C: 15 corruptions x 5 severities + the clean set, forward only; collecting inner-net inputs: one test pass.
  These scale per image from the evaluation batch's times;
- session I: its steps on the inner net alone.

Epochs are the config's maxima times ``--epoch-fraction`` (1 = the upper bound: no early stop). Data preparation,
analyses, tables and figures run on CPUs and are listed, not timed. Writes
``bench/results/estimate-<device>.json``.
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from collections import Counter
from functools import partial

import torch
from common import ROOT, attempt, best_of, device, environment, load_config, outer_net, write

from multiarg.activations import KERNELS, ActivationSpec, InnerNet, set_kernel
from multiarg.corruptions import CORRUPTIONS, SEVERITIES
from multiarg.data import _COUNTS, SHAPES
from multiarg.rnn_study import RNNConfig
from multiarg.train import train_step

# AutoAttack's standard L-inf attacks: (gradients, forward queries) per image. APGD-T and FAB-T try 9 target
# classes of 100 iterations; FAB needs two gradients per iteration; Square makes 5000 queries.
AA_COST = {"apgd-ce": (100, 0), "apgd-t": (900, 0), "fab-t": (1800, 0), "square": (0, 5000)}
TIMED_RULES = {"pretrain_inner", "train_session2", "train_session3", "train_rnn", "train_adversarial",
               "collect_inputs", "eval_cifar10c", "autoattack"}
CPU_RULES = {"prepare_data", "param_table", "cifar10c", "analyze_nonlinearities", "fig4", "fig5", "fig7_fig8",
             "fig9", "cifar10c_table", "table1", "rnn_table", "fig_rnn", "summary_table", "fig_compare", "all"}


def dag_jobs(configfile: str | None) -> list[tuple[str, dict]]:
    """Every job of ``snakemake all`` as (rule, wildcards), from a forced dry run."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1", "all"]
    out = subprocess.run(cmd + (["--configfile", configfile] if configfile else []), cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    jobs, rule = [], None
    for line in out.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            rule = m[1]
            jobs.append((rule, {}))
        elif rule and (m := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs[-1][1].update(kv.split("=", 1) for kv in m[1].split(", "))
    return jobs


class Timer:
    """Measured seconds per batch of one network: a training step, an evaluation, a gradient to the input."""

    def __init__(self, model: torch.nn.Module, shape: tuple, batch: int, eval_batch: int, dev, repeats: int):
        model = model.to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.rand(batch, *shape, device=dev), torch.randint(0, 10, (batch,), device=dev)
        xe = torch.rand(eval_batch, *shape, device=dev)
        ye = torch.randint(0, 10, (eval_batch,), device=dev)

        def evaluate():
            model.eval()
            with torch.no_grad():
                model(xe)

        def input_gradient(inputs, labels):
            model.eval()
            inputs = inputs.clone().requires_grad_()
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
            fns = {"step": regression_step}
        else:
            fns = {"step": step, "eval": evaluate, "grad": partial(input_gradient, x, y),
                   "eval_grad": partial(input_gradient, xe, ye)}
        for fn in fns.values():
            fn()  # warm-up
        self.seconds = best_of(fns, repeats, 1, dev)


def _batches(n: int, size: int) -> int:
    return math.ceil(n / size)


def job_seconds(rule: str, w: dict, config: dict, timer, args) -> float:
    """Seconds of one job from its network's measured batch times."""
    if rule not in TIMED_RULES:
        raise ValueError(f"no cost model for rule {rule!r}")
    d, t = config["data"], config["train"]
    if rule == "pretrain_inner":
        return config["pretrain"]["steps"] * timer.seconds["step"]
    dataset = "mnist" if rule == "train_rnn" else w["dataset"]
    full_train, full_test = _COUNTS[dataset]
    n_train = min(full_train - d["val_size"], d["train_limit"] or math.inf)
    n_test = min(full_test, d["test_limit"] or math.inf)
    s, eval_batch = timer.seconds, t["eval_batch_size"]
    eval_batches = _batches(d["val_size"], eval_batch) + _batches(n_test, eval_batch)  # every epoch: val + test
    evaluation = eval_batches * s["eval"]
    if rule in ("train_session2", "train_session3", "train_rnn"):
        epochs = {"train_session2": t["session2_epochs"], "train_session3": t["session3_epochs"],
                  "train_rnn": config["rnn"]["max_epochs"]}[rule]
        return epochs * args.epoch_fraction * (_batches(n_train, t["batch_size"]) * s["step"] + evaluation)
    if rule == "train_adversarial":
        adv = config["robustness"]["adversarial"]
        steps = adv[dataset]["steps"]
        n_adv = min(n_train, adv["train_limit"] or math.inf)
        robust = evaluation + (eval_batches * steps * s["eval_grad"] if adv["robust_eval"] else 0)
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


def network_key(rule: str, w: dict) -> tuple:
    if rule == "pretrain_inner":
        return ("inner", w["activation"])
    if rule == "train_rnn":
        return ("rnn", w["activation"])
    return ("outer", w["dataset"], w["arch"], w["activation"])


def build_timer(key: tuple, config: dict, dev, repeats: int) -> Timer:
    m, t = config["model"], config["train"]
    inner = (m["inner_hidden"], m["inner_depth"])
    if key[0] == "inner":
        p = config["pretrain"]
        net = InnerNet(ActivationSpec.parse(key[1]).n_args, *inner)
        return Timer(net.net, (net.n_args,), p["batch_size"], p["batch_size"], dev, repeats)
    if key[0] == "rnn":
        r = config["rnn"]
        net = RNNConfig(key[1], r["hidden"], r["sequence"], inner_hidden=inner[0], inner_depth=inner[1]).build()
        return Timer(net, SHAPES["mnist"][0], t["batch_size"], t["eval_batch_size"], dev, repeats)
    _, dataset, arch, activation = key
    return Timer(outer_net(config, dataset, arch, activation), SHAPES[dataset][0], t["batch_size"],
                 t["eval_batch_size"], dev, repeats)


def estimate(config: dict, jobs: list[tuple[str, dict]], dev, args) -> dict:
    """Hours per rule. A network that cannot be timed here is listed under ``failed`` and its jobs under
    ``jobs_not_timed``; the total then covers the others only."""
    timed = [(rule, w) for rule, w in jobs if rule not in CPU_RULES]
    keys = dict.fromkeys(network_key(*j) for j in timed)
    timers, failed = attempt({key: partial(build_timer, key, config, dev, args.repeats) for key in keys})
    per_rule: Counter = Counter()
    missing: Counter = Counter()
    for rule, w in timed:
        key = network_key(rule, w)
        if key in timers:
            per_rule[rule] += job_seconds(rule, w, config, timers[key], args)
        else:
            missing[rule] += 1
    counts = Counter(rule for rule, _ in jobs)
    return {"hours_total": sum(per_rule.values()) / 3600,
            "rules": {rule: {"jobs": counts[rule], "hours": sec / 3600} for rule, sec in per_rule.most_common()},
            "cpu_rules_not_timed": {rule: n for rule, n in counts.items() if rule in CPU_RULES},
            "jobs_not_timed": dict(missing), "failed": {"/".join(k): e for k, e in failed.items()},
            "networks": {"/".join(k): t.seconds for k, t in timers.items()}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="overrides on config.yaml, as for snakemake")
    p.add_argument("--inner-kernel", default="eager", choices=KERNELS)
    p.add_argument("--epoch-fraction", type=float, default=1.0, help="share of the maximum epochs run")
    p.add_argument("--robust-fraction", type=float, default=1.0,
                   help="share of images APGD-CE leaves unbroken (1 = upper bound)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = device()
    config = load_config(args.configfile)
    set_kernel(args.inner_kernel)
    result = {**environment(dev), "configfile": args.configfile or "config.yaml", "scale": config["scale"],
              "inner_kernel": args.inner_kernel, "epoch_fraction": args.epoch_fraction,
              "robust_fraction": args.robust_fraction, **estimate(config, dag_jobs(args.configfile), dev, args)}
    set_kernel("eager")
    for rule, v in result["rules"].items():
        print(f"{rule:20s} {v['jobs']:5d} jobs {v['hours']:10.2f} h")
    print(f"{'total':20s} {sum(v['jobs'] for v in result['rules'].values()):5d} jobs "
          f"{result['hours_total']:10.2f} h on {result['device']} (+ CPU steps: "
          f"{sum(result['cpu_rules_not_timed'].values())} jobs)")
    for network, err in result["failed"].items():
        print(f"not timed: {network} ({err}); without its jobs {result['jobs_not_timed']}")
    print("wrote", write(result, f"estimate-{dev.type}", args.out))
    return result


if __name__ == "__main__":
    main()
