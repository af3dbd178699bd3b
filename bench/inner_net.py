"""Throughput of the shared inner net, forward + backward, eager PyTorch against the fused Triton kernels.

    python bench/inner_net.py                    # CUDA: the paper CNN's layer-1 size (7.9 M argument pairs)
    python bench/inner_net.py --points 200000    # any size; on a CPU only the eager variants run

Effective TFLOP/s counts forward + backward as 3x the forward FLOPs. Every variant runs side by side in one
process, alternating, so the ratios are comparable on a noisy machine. Writes
``bench/results/inner_net-<device>.json`` with the device, versions and the command.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from multiarg.activations import InnerNet
from multiarg.fused import MODES, fused_inner, supported
from multiarg.params import inner_flops

LAYER1_POINTS = 128 * 60 * 32 * 32  # batch 128 x 60 units x 32 x 32 locations of the paper's CNN


def _eager(mode: str):
    def run(inner, x):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        with torch.autocast(x.device.type, torch.bfloat16, enabled=mode == "bf16"):
            return inner(x).float()
    return run


def _step(fn, inner, x):
    out = fn(inner, x)
    out.backward(torch.ones_like(out))


def _time(fn, inner, x, repeats: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        _step(fn, inner, x)
    sync()
    return (time.perf_counter() - start) / repeats


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=None, help=f"argument tuples (default: {LAYER1_POINTS} on CUDA)")
    p.add_argument("--n-args", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each variant is kept")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    points = args.points or (LAYER1_POINTS if device.type == "cuda" else 100_000)
    torch.manual_seed(0)
    inner = InnerNet(args.n_args, args.hidden).to(device)
    x = torch.randn(points, args.n_args, device=device, requires_grad=True)
    variants = {f"eager-{m}": _eager(m) for m in MODES}
    if supported(inner, x):
        variants.update({f"fused-{m}": (lambda mode: lambda net, inp: fused_inner(net, inp, mode))(m) for m in MODES})
    for fn in variants.values():  # warm-up: compilation, autotuning, allocator
        _step(fn, inner, x)
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], _time(fn, inner, x, args.repeats))
    flops = 3 * points * inner_flops(args.n_args, args.hidden)
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "device": torch.cuda.get_device_name()
              if device.type == "cuda" else platform.processor() or platform.machine(),
              "torch": torch.__version__, "python": platform.python_version(), "points": points,
              "n_args": args.n_args, "hidden": args.hidden, "flops_per_step": flops,
              "variants": {name: {"seconds": s, "tflops": flops / s / 1e12, "vs_eager_fp32": best["eager-fp32"] / s}
                           for name, s in best.items()}}
    try:
        import triton

        result["triton"] = triton.__version__
    except ImportError:
        result["triton"] = None
    out = Path(args.out or Path(__file__).parent / "results" / f"inner_net-{device.type}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, v in result["variants"].items():
        print(f"{name:12s} {1e3 * v['seconds']:9.2f} ms  {v['tflops']:7.3f} TFLOP/s  x{v['vs_eager_fp32']:.2f}")
    return result


if __name__ == "__main__":
    main()
