"""Throughput of the shared inner net, forward + backward: eager PyTorch, chunked PyTorch, the fused Triton kernels.

    python bench/inner_net.py                    # CUDA: the paper CNN's layer-1 size (7.9 M argument pairs)
    python bench/inner_net.py --points 200000    # any size; on a CPU the eager and chunked variants run
    python bench/inner_net.py --sweep            # also time every fused launch setting (block, warps, grid)
    python bench/inner_net.py --chunks 4096,16384,65536   # the chunked variant at several chunk sizes

Effective TFLOP/s counts forward + backward as 3x the forward FLOPs. Each variant's error (output and the
largest over all gradients) is measured against a float64 evaluation of the same net. ``chunked`` is
:mod:`multiarg.chunked` at its default chunk for the device (``chunked-<points>`` with ``--chunks``). Every
variant runs side by side in one process, alternating, so the ratios are comparable on a noisy machine. ``--sweep``
times the fused TF32 and bf16 kernels under every :class:`~multiarg.fused.Launch` in SWEEP (n = 2, side by side
within each mode, on a layer's layout as training passes it: argument k of every unit in one contiguous run), to
choose ``multiarg.fused.LAUNCHES`` from; each fused setting records its kernels' registers, spills and shared memory
(on a GPU: what to look at when a setting is slow). On CUDA every fused variant is first launched once in a pool of
processes (:func:`common.compile_ahead`: dozens of kernels compiled side by side rather than one after another), and
each variant's ``warm_up_seconds`` says whether its kernels then came from the cache. A variant that fails (a
compiler, a kernel) is recorded under ``failed`` and the others are still measured. The JSON,
``bench/results/inner_net-<device>.json`` with the device, versions and the command, is rewritten after every
measurement, so a run cut off keeps what it measured.
"""
from __future__ import annotations

import argparse
import copy
import itertools
from dataclasses import asdict
from functools import partial

import torch
from common import best_of, compile_ahead, device, environment, warm_up, write

from multiarg import fused
from multiarg.activations import InnerNet
from multiarg.chunked import chunked_inner_net
from multiarg.fused import LAUNCHES, MODES, Launch, fused_activation, fused_inner, supported
from multiarg.params import inner_flops

LAYER1_POINTS = 128 * 60 * 32 * 32  # batch 128 x 60 units x 32 x 32 locations of the paper's CNN
SWEEP_MODES = ("tf32", "bf16")  # the fast modes; fp32 IEEE products leave the tensor cores idle
SWEEP = [Launch(block, warps, per_sm) for block, warps, per_sm in itertools.product((32, 64, 128), (4, 8), (2, 4, 8))]


class _Compiled:
    """Stands in for a Triton kernel in :mod:`multiarg.fused` and keeps what its last launch ran, for the
    registers, spills and shared memory of each setting (the library has no reason to keep compiled kernels)."""

    def __init__(self, kernel):
        self.kernel, self.last = kernel, None

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.last = self.kernel[grid](*args, **kwargs)
            return self.last
        return launch

    def resources(self) -> dict:
        """None under the interpreter, which compiles nothing."""
        return {"registers": getattr(self.last, "n_regs", None), "spills": getattr(self.last, "n_spills", None),
                "shared_bytes": getattr(getattr(self.last, "metadata", None), "shared", None)}


def _kernels() -> dict[str, _Compiled]:
    for name in ("_forward_kernel", "_backward_kernel"):
        if not isinstance(getattr(fused, name), _Compiled):
            setattr(fused, name, _Compiled(getattr(fused, name)))
    return {"forward": fused._forward_kernel, "backward": fused._backward_kernel}


def _resources(step) -> dict:
    """What the fused kernels compiled to for one variant: run it once more and read its launches."""
    kernels = _kernels()
    step()
    return {name: kernel.resources() for name, kernel in kernels.items()}


def _eager(mode: str):
    def run(inner, x):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        with torch.autocast(x.device.type, torch.bfloat16, enabled=mode == "bf16"):
            return inner(x).float()
    return run


def _errors(fn, inner, x) -> dict:
    """Largest error of the output and of every gradient against a float64 reference, relative to each
    tensor's largest entry (on 65 536 points, to keep the reference cheap)."""
    x = x[:65536].detach()
    results = []
    for net, inp, run in ((inner, x, fn), (copy.deepcopy(inner).double(), x.double(), lambda n, v: n(v))):
        inp = inp.clone().requires_grad_()
        out = run(net, inp)
        grads = torch.autograd.grad(out, [inp, *net.parameters()], torch.ones_like(out))
        results.append([out.detach().double(), *(g.double() for g in grads)])
    rel = [((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(*results)]
    return {"output": rel[0], "gradients": max(rel[1:])}


def _step(fn, inner, x):
    out = fn(inner, x)
    out.backward(torch.ones_like(out))


def _tuples(n_args: int, hidden: int, points: int, dev: torch.device) -> tuple[InnerNet, torch.Tensor]:
    """The net and the argument tuples, one per row, that :func:`_measure` times."""
    torch.manual_seed(0)
    return InnerNet(n_args, hidden).to(dev), torch.randn(points, n_args, device=dev, requires_grad=True)


def _layer(hidden: int, points: int, dev: torch.device) -> tuple[InnerNet, torch.Tensor]:
    """The net and a layer's pre-activations, argument k of every unit in one run, that :func:`_sweep` times."""
    torch.manual_seed(0)
    return InnerNet(2, hidden).to(dev), torch.randn(1, 2, points, device=dev, requires_grad=True)


def _fused(mode: str, launch: Launch | None = None):
    """A fused variant: on argument tuples by default, on a layer's layout when ``launch`` is given."""
    if launch is None:
        return lambda net, inp: fused_inner(net, inp, mode)
    return lambda net, inp: fused_activation(net, inp, 1, mode, launch)


def _launch_once(n_args: int, hidden: int, points: int, mode: str, launch: Launch | None = None) -> None:
    """One step of a fused variant on what the timed process gives it: a :func:`common.compile_ahead` job."""
    dev = device()
    inner, x = _tuples(n_args, hidden, points, dev) if launch is None else _layer(hidden, points, dev)
    _step(_fused(mode, launch), inner, x)


def ahead_jobs(n_args: list[int], hidden: int, points: int, sweep: bool) -> dict:
    """A job per distinct kernel pair that :func:`_measure` and :func:`_sweep` will launch."""
    jobs = {f"n={n} {mode}": partial(_launch_once, n, hidden, points, mode) for n in n_args for mode in MODES}
    if sweep:  # programs_per_sm sets only the grid: one compilation per block and warps
        for mode, (block, warps) in itertools.product(SWEEP_MODES, sorted({(la.block, la.warps) for la in SWEEP})):
            jobs[f"sweep {mode} {block}x{warps}"] = partial(_launch_once, 2, hidden, points, mode, Launch(block, warps))
    return jobs


def _chunked(chunk: int | None):
    return lambda net, inp: chunked_inner_net(net, inp, chunk=chunk)


def _measure(n_args: int, hidden: int, points: int, dev: torch.device, repeats: int, rounds: int,
             chunks: list[int]) -> dict:
    inner, x = _tuples(n_args, hidden, points, dev)
    variants = {f"eager-{m}": _eager(m) for m in ("fp32", "tf32", "bf16")}  # PyTorch has no tf32x3
    variants.update({f"chunked-{c}": _chunked(c) for c in chunks} if chunks else {"chunked": _chunked(None)})
    if supported(inner, x):
        variants.update({f"fused-{m}": _fused(m) for m in MODES})
    steps = {name: partial(_step, fn, inner, x) for name, fn in variants.items()}
    warm = {}
    failed = warm_up(steps, seconds=warm)
    best = best_of(steps, repeats, rounds, dev)
    flops = 3 * points * inner_flops(n_args, hidden)
    reference = best.get("eager-fp32")
    return {"flops_per_step": flops, "failed": failed,
            "variants": {name: {"seconds": s, "tflops": flops / s / 1e12, "warm_up_seconds": warm[name],
                                "vs_eager_fp32": reference / s if reference else None,
                                "error_vs_fp64": _errors(variants[name], inner, x),
                                **({"kernels": _resources(steps[name])} if name.startswith("fused") else {})}
                         for name, s in best.items()}}


def _sweep(mode: str, hidden: int, points: int, dev: torch.device, repeats: int, rounds: int) -> dict:
    """Every fused launch setting in SWEEP for n = 2 in one mode, timed side by side; and the fastest."""
    inner, z = _layer(hidden, points, dev)
    steps = {launch: partial(_step, _fused(mode, launch), inner, z) for launch in SWEEP}
    warm = {}
    failed = warm_up(steps, seconds=warm)
    best = best_of(steps, repeats, rounds, dev)
    flops = 3 * points * inner_flops(2, hidden)
    rows = [{"mode": mode, **asdict(launch), "default": launch == LAUNCHES[mode], "seconds": s,
             "tflops": flops / s / 1e12, "warm_up_seconds": warm[launch], "kernels": _resources(steps[launch])}
            for launch, s in best.items()]
    return {"launches": rows, "failed": failed, "best": min(rows, key=lambda r: r["seconds"]) if rows else None}


def _used(kernel: dict) -> str:
    return f"{kernel['registers']}/{kernel['spills']}"


def _report_failures(what: str, failed: dict) -> None:
    for name, err in failed.items():
        print(f"{what} {name} failed: {err}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=None, help=f"argument tuples (default: {LAYER1_POINTS} on CUDA)")
    p.add_argument("--n-args", default="1,2,3", help="comma-separated argument counts")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each variant is kept")
    p.add_argument("--sweep", action="store_true", help="also time every fused launch setting in SWEEP")
    p.add_argument("--chunks", default="", help="comma-separated chunk sizes of the chunked variant (default: the "
                   "device's, multiarg.chunked.CHUNKS)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = device()
    points = args.points or (LAYER1_POINTS if dev.type == "cuda" else 100_000)
    result = {**environment(dev), "points": points, "hidden": args.hidden, "n_args": {}}
    out = f"inner_net-{dev.type}"
    n_args = list(map(int, args.n_args.split(",")))
    sweep = args.sweep and supported(InnerNet(2, args.hidden), torch.empty(0, 2, device=dev))
    if dev.type == "cuda" and all(supported(InnerNet(n, args.hidden), torch.empty(0, n, device=dev)) for n in n_args):
        result["compile_ahead"] = compile_ahead(ahead_jobs(n_args, args.hidden, points, sweep))
    chunks = [int(c) for c in args.chunks.split(",") if c]
    for n in n_args:
        result["n_args"][n] = r = _measure(n, args.hidden, points, dev, args.repeats, args.rounds, chunks)
        for name, v in r["variants"].items():
            err, ratio = v["error_vs_fp64"], f"x{v['vs_eager_fp32']:.2f}" if v["vs_eager_fp32"] else ""
            print(f"n={n} {name:13s} {1e3 * v['seconds']:9.2f} ms  {v['tflops']:7.3f} TFLOP/s  "
                  f"{ratio:6s}  error {err['output']:.1e} / {err['gradients']:.1e}")
        _report_failures(f"n={n}", r["failed"])
        path = write(result, out, args.out)  # after every measurement: a run cut off by a timeout keeps the rest
    if sweep:
        result["sweep"] = {"n_args": 2, "points": points, "launches": [], "failed": {}, "best": {}}
        for mode in SWEEP_MODES:
            r = _sweep(mode, args.hidden, points, dev, args.repeats, args.rounds)
            result["sweep"]["launches"] += r["launches"]
            result["sweep"]["failed"].update({f"{mode} {k}": v for k, v in r["failed"].items()})
            if r["best"]:
                result["sweep"]["best"][mode] = row = r["best"]
                default = next((x["tflops"] for x in r["launches"] if x["default"]), float("nan"))
                print(f"sweep {mode}: best block {row['block']} warps {row['warps']} programs/SM "
                      f"{row['programs_per_sm']}: {row['tflops']:.1f} TFLOP/s (default launch {default:.1f}); "
                      f"registers and spills, forward {_used(row['kernels']['forward'])}, "
                      f"backward {_used(row['kernels']['backward'])}")
            _report_failures(f"sweep {mode}", r["failed"])
            path = write(result, out, args.out)
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
