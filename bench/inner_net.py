"""Throughput of the shared inner net, forward + backward, eager PyTorch against the fused Triton kernels.

    python bench/inner_net.py                    # CUDA: the paper CNN's layer-1 size (7.9 M argument pairs)
    python bench/inner_net.py --points 200000    # any size; on a CPU only the eager variants run
    python bench/inner_net.py --sweep            # also time every fused launch setting (block, warps, grid)

Effective TFLOP/s counts forward + backward as 3x the forward FLOPs. Each variant's error (output and the
largest over all gradients) is measured against a float64 evaluation of the same net. Every variant runs side by
side in one process, alternating, so the ratios are comparable on a noisy machine. ``--sweep`` times the fused
TF32 and bf16 kernels under every :class:`~multiarg.fused.Launch` in SWEEP (n = 2, side by side again, on a
layer's layout as training passes it: argument k of every unit in one contiguous run), to choose
``multiarg.fused.LAUNCH`` from. Writes ``bench/results/inner_net-<device>.json`` with the device, versions and
the command, per argument count.
"""
from __future__ import annotations

import argparse
import copy
import itertools
from dataclasses import asdict
from functools import partial

import torch
from common import best_of, device, environment, write

from multiarg.activations import InnerNet
from multiarg.fused import LAUNCH, MODES, Launch, fused_activation, fused_inner, supported
from multiarg.params import inner_flops

LAYER1_POINTS = 128 * 60 * 32 * 32  # batch 128 x 60 units x 32 x 32 locations of the paper's CNN
SWEEP_MODES = ("tf32", "bf16")  # the fast modes; fp32 IEEE products leave the tensor cores idle
SWEEP = [Launch(block, warps, per_sm) for block, warps, per_sm in itertools.product((32, 64, 128), (4, 8), (2, 4, 8))]


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


def _measure(n_args: int, hidden: int, points: int, dev: torch.device, repeats: int, rounds: int) -> dict:
    torch.manual_seed(0)
    inner = InnerNet(n_args, hidden).to(dev)
    x = torch.randn(points, n_args, device=dev, requires_grad=True)
    variants = {f"eager-{m}": _eager(m) for m in MODES}
    if supported(inner, x):
        variants.update({f"fused-{m}": (lambda mode: lambda net, inp: fused_inner(net, inp, mode))(m) for m in MODES})
    for fn in variants.values():  # warm-up: compilation, autotuning, allocator
        _step(fn, inner, x)
    best = best_of({name: partial(_step, fn, inner, x) for name, fn in variants.items()}, repeats, rounds, dev)
    flops = 3 * points * inner_flops(n_args, hidden)
    return {"flops_per_step": flops,
            "variants": {name: {"seconds": s, "tflops": flops / s / 1e12, "vs_eager_fp32": best["eager-fp32"] / s,
                                "error_vs_fp64": _errors(variants[name], inner, x)} for name, s in best.items()}}


def _sweep(hidden: int, points: int, dev: torch.device, repeats: int, rounds: int) -> dict:
    """Every fused launch setting for n = 2 in each of SWEEP_MODES, timed side by side; the best per mode."""
    torch.manual_seed(0)
    inner = InnerNet(2, hidden).to(dev)
    z = torch.randn(1, 2, points, device=dev, requires_grad=True)
    variants = {(mode, launch): (lambda m, la: lambda net, inp: fused_activation(net, inp, 1, m, la))(mode, launch)
                for mode in SWEEP_MODES for launch in SWEEP}
    for fn in variants.values():
        _step(fn, inner, z)
    best = best_of({key: partial(_step, fn, inner, z) for key, fn in variants.items()}, repeats, rounds, dev)
    flops = 3 * points * inner_flops(2, hidden)
    rows = [{"mode": mode, **asdict(launch), "default": launch == LAUNCH, "seconds": s,
             "tflops": flops / s / 1e12} for (mode, launch), s in best.items()]
    fastest = {mode: min((r for r in rows if r["mode"] == mode), key=lambda r: r["seconds"])
               for mode in SWEEP_MODES}
    return {"n_args": 2, "points": points, "launches": rows, "best": fastest}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=None, help=f"argument tuples (default: {LAYER1_POINTS} on CUDA)")
    p.add_argument("--n-args", default="1,2,3", help="comma-separated argument counts")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each variant is kept")
    p.add_argument("--sweep", action="store_true", help="also time every fused launch setting in SWEEP")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = device()
    points = args.points or (LAYER1_POINTS if dev.type == "cuda" else 100_000)
    result = {**environment(dev), "points": points, "hidden": args.hidden, "n_args": {}}
    for n in map(int, args.n_args.split(",")):
        result["n_args"][n] = _measure(n, args.hidden, points, dev, args.repeats, args.rounds)
        for name, v in result["n_args"][n]["variants"].items():
            err = v["error_vs_fp64"]
            print(f"n={n} {name:12s} {1e3 * v['seconds']:9.2f} ms  {v['tflops']:7.3f} TFLOP/s  "
                  f"x{v['vs_eager_fp32']:.2f}  error {err['output']:.1e} / {err['gradients']:.1e}")
    probe = torch.empty(0, 2, device=dev)
    if args.sweep and supported(InnerNet(2, args.hidden), probe):
        result["sweep"] = _sweep(args.hidden, points, dev, args.repeats, args.rounds)
        for mode, row in result["sweep"]["best"].items():
            default = next(r for r in result["sweep"]["launches"] if r["mode"] == mode and r["default"])
            print(f"sweep {mode}: best block {row['block']} warps {row['warps']} programs/SM {row['programs_per_sm']}: "
                  f"{row['tflops']:.1f} TFLOP/s (default launch {default['tflops']:.1f})")
    print("wrote", write(result, f"inner_net-{dev.type}", args.out))
    return result


if __name__ == "__main__":
    main()
