"""Time and peak memory of one training step (forward, backward, Adam) of the paper's networks: the 2-arg net
through every inner-net kernel against the parameter-matched ReLU net and the other activations (DAC through its
eager path and its fused kernels).

    python bench/train_step.py                           # CUDA: batch 128, CIFAR-10 CNN and MNIST MLP
    python bench/train_step.py --batch 8 --repeats 2     # a look on a CPU (the eager and chunked kernels run)
    python bench/train_step.py --configfile workflow/configs/demo.yaml --batch 32   # the demo's networks
    python bench/train_step.py --compile relu,arg2/fused-tf32 --graphs relu,arg2/fused-tf32
                                                         # adds these variants torch.compile'd, and replayed as
                                                         # CUDA graphs (mode="reduce-overhead"); a bare name: eager
    python bench/train_step.py --profile arg2/fused-tf32,relu/eager   # where these variants' step time goes
    TRITON_INTERPRET=1 python bench/train_step.py --memory-only       # what the fused kernels save, on a CPU

Models are built as the workflow builds them from config.yaml (paper widths, dropout, LayerNorm, 64-wide inner net;
baselines matched to arg2's parameter count; or with ``--configfile``'s overrides), the batch stays on the device,
and every variant of a setting runs side by side, alternating, so ratios to ReLU are comparable on a noisy machine.
Besides the peak memory a GPU reports, every variant records the bytes autograd saves for a step's backward pass at
the batch (``saved_bytes``), counted on any device: at batch 128 most of a step's memory. On CUDA the variants with
something to compile are first run once each in a pool of processes (:func:`common.compile_ahead`);
``warm_up_seconds`` shows what was left to compile. Writes ``bench/results/train_step-<device>.json``
(``train_step-<configfile's name>-<device>.json`` with ``--configfile``; ``-interpreted``, ``-memory`` added for
those runs) with the device, versions and the command.
"""
from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
import torch._dynamo
from common import attempt, best_of, compile_ahead, device, environment, load_config, outer_net, warm_up, write

from multiarg import fused_dac
from multiarg.activations import KERNELS, ActivationSpec, InnerNet, set_kernel
from multiarg.data import SHAPES
from multiarg.fused import supported
from multiarg.models import OuterNet, count_parameters
from multiarg.train import train_step

SETTINGS = {"cifar10-cnn": ("cifar10", "cnn"), "mnist-mlp": ("mnist", "mlp")}  # (dataset, arch)
CONFIG = load_config()


def build(setting: str, activation: str, dev: torch.device, config: dict = CONFIG) -> OuterNet:
    return outer_net(config, *SETTINGS[setting], activation).to(dev)


COMPILERS = {"compile": {}, "graphs": {"mode": "reduce-overhead"}}  # a variant's +suffix: torch.compile's arguments


def variant_names(activation: str, dev: torch.device) -> list[str]:
    """``activation/kernel``: every kernel that can run here for learned activations (eager and chunked anywhere),
    and for DAC the eager path and its fused kernels (fp32 whichever mode is chosen: one variant stands for all)."""
    spec, probe = ActivationSpec.parse(activation), torch.empty(1, device=dev)
    if spec.learned and supported(InnerNet(spec.n_args), probe):
        kernels = KERNELS
    elif spec.learned:
        kernels = ("eager", "chunked")
    elif spec.design == "dac" and fused_dac.supported(probe):
        kernels = ("eager", "fused-fp32")
    else:
        kernels = ("eager",)
    return [f"{activation}/{k}" for k in kernels]


def compiled_names(variants: list[str], suffix: str, runnable: list[str]) -> list[str]:
    """``variant+suffix`` (:data:`COMPILERS`) for each of ``variants`` (a bare activation meaning its eager kernel)
    that is ``runnable`` here."""
    names = (v if "/" in v else f"{v}/eager" for v in filter(None, variants))
    return [f"{name}+{suffix}" for name in names if name in runnable]


class Variant:
    """One model, optimizer and kernel; calling it runs one training step."""

    def __init__(self, name: str, model: OuterNet, inputs: torch.Tensor, labels: torch.Tensor):
        self.kernel, _, compiler = name.split("/")[1].partition("+")
        self.name, self.compiled = name, bool(compiler)
        self.model = torch.compile(model, **COMPILERS[compiler]) if compiler else model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.params = count_parameters(model)
        self.inputs, self.labels = inputs, labels

    def __call__(self):
        set_kernel(self.kernel)
        return train_step(self.model, self.optimizer, self.inputs, self.labels)

    def saved_bytes(self, batch: int) -> int | None:
        """Bytes autograd keeps for the backward pass of a step on ``batch`` images: counted on one and two images
        (:meth:`saved_on`) and extended linearly, so a GPU's batch is accounted on any device. None for a compiled
        model, whose saving is the compiler's."""
        if self.compiled:
            return None
        one, two = self.saved_on(1), self.saved_on(2)
        return one + (batch - 1) * (two - one)

    def saved_on(self, images: int) -> int:
        """Bytes of the tensors autograd saves in a forward pass over ``images`` images of the batch, each storage
        once: the activations, and the weights layers keep for their backward pass."""
        set_kernel(self.kernel)
        storages = {}

        def keep(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            self.model(self.inputs[:images])
        return sum(storages.values())

    def peak_bytes(self, dev: torch.device) -> int | None:
        """Peak device memory of one step: weights, optimizer state, batch and everything autograd keeps."""
        if dev.type != "cuda":
            return None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()


def profile(variant: Variant, dev: torch.device, steps: int = 5, top: int = 12) -> dict:
    """Where a step's time goes: the operators and kernels with the most self time (on the GPU where there is
    one), per step, and their share of the step's total."""
    cuda = dev.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            variant()
        if cuda:
            torch.cuda.synchronize()
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)
    total = sum(getattr(e, attr) for e in events) or 1.0
    return {"clock": "device" if cuda else "cpu", "ms_per_step": total / 1e3 / steps,
            "top": [{"name": e.key, "calls_per_step": e.count / steps, "ms_per_step": getattr(e, attr) / 1e3 / steps,
                     "share": getattr(e, attr) / total} for e in events[:top]]}


def all_names(activations: list[str], compiled: dict[str, list[str]], dev: torch.device) -> list[str]:
    """Every variant to time: each activation's kernels, and those of ``compiled`` (per :data:`COMPILERS` suffix)
    that run here."""
    names = [name for activation in activations for name in variant_names(activation, dev)]
    return names + [name for suffix, chosen in compiled.items() for name in compiled_names(chosen, suffix, names)]


def _batch(setting: str, batch: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    shape = SHAPES[SETTINGS[setting][0]][0]
    torch.manual_seed(0)
    return torch.rand(batch, *shape, device=dev), torch.randint(0, 10, (batch,), device=dev)


def _dynamo_limits(variants: int):
    """Dynamo's settings for a setting's ``variants``: compiled variants share OuterNet.forward's code, so each is a
    recompilation of it, and past Dynamo's limit (8) a variant would run eager unannounced. Room for all, and an
    error if not. A compile-ahead job runs under the same settings."""
    limit = max(torch._dynamo.config.recompile_limit, 4 * variants)
    return torch._dynamo.config.patch(recompile_limit=limit, fail_on_recompile_limit_hit=True)


def _step_once(setting: str, name: str, batch: int, variants: int, config: dict) -> None:
    """What the timed process runs of a variant before its warm-up (the bytes autograd saves on one and two images,
    then a step of the batch), among ``variants``: a :func:`common.compile_ahead` job, so that the same kernels and
    graphs are compiled."""
    dev = device()
    inputs, labels = _batch(setting, batch, dev)
    with _dynamo_limits(variants):
        variant = Variant(name, build(setting, name.split("/")[0], dev, config), inputs, labels)
        variant.saved_bytes(batch)
        variant()


def ahead_jobs(settings: list[str], names: list[str], batch: int, config: dict = CONFIG) -> dict:
    """A job per variant with something to compile (fused kernels; torch.compile's graphs) in each setting."""
    return {f"{setting} {name}": partial(_step_once, setting, name, batch, len(names), config)
            for setting in settings for name in names if "fused" in name or "+" in name}


def measure(setting: str, activations: list[str], batch: int, compiled: dict[str, list[str]], dev: torch.device,
            repeats: int, rounds: int, profiled: tuple[str, ...] = (), memory_only: bool = False,
            config: dict = CONFIG) -> dict:
    """``compiled``: variants to add compiled, per :data:`COMPILERS` suffix; the networks are ``config``'s."""
    inputs, labels = _batch(setting, batch, dev)
    names = all_names(activations, compiled, dev)
    torch._dynamo.reset()  # a fresh start for each setting
    with _dynamo_limits(len(names)):
        variants = {name: Variant(name, build(setting, name.split("/")[0], dev, config), inputs, labels)
                    for name in names}
        saved, errors = attempt({name: partial(v.saved_bytes, batch) for name, v in variants.items()})
        for name in errors:
            del variants[name]
        warm = {}
        if memory_only:
            best, memory, profiles = dict.fromkeys(variants), dict.fromkeys(variants), {}
        else:
            errors.update(warm_up(variants, 3, warm))
            memory = {name: v.peak_bytes(dev) for name, v in variants.items()}
            best = best_of(variants, repeats, rounds, dev)
            profiles = {name: profile(variants[name], dev) for name in profiled if name in variants}
    set_kernel("eager")
    relu = {"seconds": best.get("relu/eager"), "peak": memory.get("relu/eager"), "saved": saved.get("relu/eager")}
    rows = {name: {"seconds": s, "warm_up_seconds": warm.get(name), "params": variants[name].params,
                   "peak_bytes": memory[name], "saved_bytes": saved[name], "time_vs_relu": _ratio(s, relu["seconds"]),
                   "memory_vs_relu": _ratio(memory[name], relu["peak"]),
                   "saved_vs_relu": _ratio(saved[name], relu["saved"])}
            for name, s in best.items()}
    return {"batch": batch, "variants": rows, "failed": errors, "profiles": profiles}


def _ratio(value, relu):
    return value / relu if value is not None and relu else None


def _times(ratio: float | None) -> str:
    return f" x{ratio:.2f}" if ratio is not None else ""  # no ratio where ReLU was not measured


def _mib(label: str, nbytes: int | None, ratio: float | None) -> str:
    return f"{label} {nbytes / 2**20:8.1f} MiB" + _times(ratio) if nbytes else ""


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {list(SETTINGS)}")
    p.add_argument("--configfile", default=None, help="overrides on config.yaml (widths, inner net), as for snakemake")
    p.add_argument("--activations", default="relu,arg2,arg1,gamma,dac")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--compile", default="", metavar="VARIANTS",
                   help="comma-separated variants to also time torch.compile'd, e.g. relu,arg2/fused-tf32 (a bare "
                        "activation: its eager kernel)")
    p.add_argument("--graphs", default="", metavar="VARIANTS",
                   help="the same, compiled with mode='reduce-overhead' (CUDA graphs on a GPU)")
    p.add_argument("--profile", default="", metavar="VARIANTS",
                   help="comma-separated variants (activation/kernel) to profile, e.g. arg2/fused-tf32,relu/eager")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each variant is kept")
    p.add_argument("--memory-only", action="store_true",
                   help="only what autograd saves per step (no timing): e.g. the fused kernels under the interpreter")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = device()
    env = environment(dev)
    config = load_config(args.configfile)
    result = {**env, "configfile": args.configfile, "settings": {}}
    scale = f"-{Path(args.configfile).stem}" if args.configfile else ""
    record = f"train_step{scale}-{dev.type}" + "-interpreted" * env["triton_interpreter"] + "-memory" * args.memory_only
    settings, activations = args.settings.split(","), args.activations.split(",")
    compiled = {"compile": args.compile.split(","), "graphs": args.graphs.split(",")}
    if dev.type == "cuda" and not args.memory_only:
        result["compile_ahead"] = compile_ahead(ahead_jobs(settings, all_names(activations, compiled, dev), args.batch,
                                                           config))
    for setting in settings:
        result["settings"][setting] = r = measure(setting, activations, args.batch, compiled, dev, args.repeats,
                                                  args.rounds, tuple(filter(None, args.profile.split(","))),
                                                  args.memory_only, config)
        for variant, v in r["variants"].items():
            cells = [f"{1e3 * v['seconds']:9.2f} ms" + _times(v["time_vs_relu"]) if v["seconds"] else "",
                     _mib("peak", v["peak_bytes"], v["memory_vs_relu"]),
                     _mib("saved", v["saved_bytes"], v["saved_vs_relu"])]
            print(f"{setting:12s} {variant:24s} " + "  ".join(filter(None, cells)))
        for name, prof in r["profiles"].items():
            heaviest = ", ".join(f"{e['name']} {100 * e['share']:.0f}%" for e in prof["top"][:4])
            print(f"{setting:12s} {name:24s} profile ({prof['clock']}, {prof['ms_per_step']:.2f} ms/step): {heaviest}")
        for name, err in r["failed"].items():
            print(f"{setting:12s} {name:24s} failed: {err}")
        path = write(result, record, args.out)  # after each setting: a cut-off run keeps some
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
