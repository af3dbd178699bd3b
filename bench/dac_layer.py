"""Time and memory of DAC's dendritic product, forward + backward, at the paper's layer sizes: the blocked eager
path against the fused Triton kernels (multiarg.fused_dac).

    python bench/dac_layer.py                 # CUDA: batch 128, every DAC layer of the CIFAR-10 CNN and MNIST MLP
    python bench/dac_layer.py --batch 4       # a look on a CPU (only the eager path runs there)
    python bench/dac_layer.py --sweep         # also every Tiles of SWEEP, on the CNN's layer with most connections

Layer shapes come from the networks the workflow trains (config.yaml: DAC widths matched to arg2's parameter
count), the input gradient is asked for where training asks for it (not in a first layer), and the variants of a
layer run side by side, alternating. ``G conn/s`` counts connections (point x output x input) through forward and
backward per second; TFLOP/s counts a connection's add, relu and multiply-add as 4 forward FLOPs
(:func:`multiarg.dendritic.dac_costs`) and the backward as twice the forward. Errors (output and the largest over
the gradients, relative to each tensor's largest entry) are against a float64 evaluation. On CUDA each fused
variant is first run once in a pool of processes (:func:`common.compile_ahead`). Writes
``bench/results/dac_layer-<device>.json`` with the device, versions and the command, after every layer.
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import asdict
from functools import partial

import torch
from common import best_of, compile_ahead, device, environment, load_config, outer_net, warm_up, write

from multiarg.dendritic import DACConv2d, DACLinear, dendritic_product
from multiarg.fused_dac import TILES, Tiles, fused_dendritic, supported

NETWORKS = {"cifar10-cnn": ("cifar10", "cnn", (3, 32, 32)), "mnist-mlp": ("mnist", "mlp", (1, 28, 28))}
SWEEP = {f"{points}x{units}/u4/w{warps}": Tiles(points, units, 4, warps)
         for points, units, warps in itertools.product((32, 64, 128), (32, 64), (4, 8))}


def layer_shapes(batch: int) -> list[dict]:
    """``(B, in, L) -> (B, out, L)`` of every DAC layer the workflow's networks run on a batch of ``batch``."""
    config, shapes = load_config(), []
    for network, (dataset, arch, image) in NETWORKS.items():
        model = outer_net(config, dataset, arch, "dac")
        seen = []
        for layer in (m for m in model.modules() if isinstance(m, DACLinear)):
            def hook(layer, inputs, output, seen=seen):
                conv = isinstance(layer, DACConv2d)
                length = output.shape[2] * output.shape[3] if conv else batch
                seen.append({"layer": f"{network}/{len(seen) + 1}", "batch": batch if conv else 1,
                             "n_in": layer.weight.shape[1], "length": length, "n_out": layer.weight.shape[0]})
            layer.register_forward_hook(hook)
        with torch.no_grad():
            model(torch.rand(1, *image))
        shapes += seen
    return shapes


def first(shape: dict) -> bool:
    """Whether the layer is its network's first: training asks no input gradient of it."""
    return shape["layer"].endswith("/1")


def connections(shape: dict) -> int:
    """Connections (point x output x input) a layer of this shape evaluates."""
    return shape["batch"] * shape["length"] * shape["n_in"] * shape["n_out"]


class Step:
    """Forward and backward of one DAC product on fixed tensors."""

    def __init__(self, shape: dict, first: bool, dev: torch.device, fused: Tiles | None):
        torch.manual_seed(0)
        self.x = torch.randn(shape["batch"], shape["n_in"], shape["length"], device=dev, requires_grad=not first)
        self.weight = (torch.randn(shape["n_out"], shape["n_in"], device=dev) / shape["n_in"] ** 0.5).requires_grad_()
        self.bias = (0.5 * torch.randn(shape["n_out"], shape["n_in"], device=dev)).requires_grad_()
        self.grad = torch.randn(shape["batch"], shape["n_out"], shape["length"], device=dev)
        self.tiles = fused

    def forward(self, x, weight, bias):
        return fused_dendritic(x, weight, bias, self.tiles) if self.tiles else dendritic_product(x, weight, bias)

    def wrt(self) -> list[torch.Tensor]:
        return [t for t in (self.x, self.weight, self.bias) if t.requires_grad]

    def __call__(self):
        return torch.autograd.grad(self.forward(self.x, self.weight, self.bias), self.wrt(), self.grad)

    def errors(self) -> dict:
        """Largest error of the output and of the gradients against float64 (eager)."""
        wide = [t.detach().double().requires_grad_(t.requires_grad) for t in (self.x, self.weight, self.bias)]
        ref = dendritic_product(*wide)
        refs = (ref, *torch.autograd.grad(ref, [t for t in wide if t.requires_grad], self.grad.double()))
        out = self.forward(self.x, self.weight, self.bias)
        gots = (out, *torch.autograd.grad(out, self.wrt(), self.grad))
        rel = [((g.double() - r).abs().max() / r.abs().max().clamp_min(1e-12)).item() for g, r in zip(gots, refs)]
        return {"output": rel[0], "gradients": max(rel[1:])}

    def peak_bytes(self, dev: torch.device) -> int | None:
        """Peak device memory of one step above what was allocated before it (the inputs and parameters)."""
        if dev.type != "cuda":
            return None
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        self()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before


def _step_once(shape: dict, tiles: Tiles) -> None:
    """A fused step as the timed process runs it on the layer: a :func:`common.compile_ahead` job."""
    Step(shape, first(shape), device(), tiles)()


def ahead_jobs(shapes: list[dict], sweep: bool) -> dict:
    """A job per layer on the default tiles and, with ``sweep``, per tile setting on the largest layer."""
    jobs = {shape["layer"]: partial(_step_once, shape, TILES) for shape in shapes}
    if sweep:
        largest = max(shapes, key=connections)
        jobs.update({f"sweep {name}": partial(_step_once, largest, tiles) for name, tiles in SWEEP.items()})
    return jobs


def measure(shape: dict, variants: dict[str, Tiles | None], dev: torch.device, repeats: int, rounds: int) -> dict:
    steps = {name: Step(shape, first(shape), dev, tiles) for name, tiles in variants.items()}
    warm = {}
    failed = warm_up(steps, 2, warm)
    best = best_of(steps, repeats, rounds, dev)
    count = connections(shape)
    rows = {}
    for name, seconds in best.items():
        rows[name] = {"seconds": seconds, "warm_up_seconds": warm[name], "g_connections_per_s": count / seconds / 1e9,
                      "tflops": 3 * 4 * count / seconds / 1e12, "peak_bytes": steps[name].peak_bytes(dev),
                      "error_vs_fp64": steps[name].errors(), "time_vs_eager": seconds / best.get("eager", seconds)}
        if variants[name]:
            rows[name]["tiles"] = asdict(variants[name])
    return {**shape, "input_grad": not first(shape), "connections": count, "variants": rows, "failed": failed}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sweep", action="store_true", help="also time every Tiles of SWEEP on the largest CNN layer")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = device()
    fused = supported(torch.empty(1, device=dev))
    variants = {"eager": None, **({"fused": TILES} if fused else {})}
    result = {**environment(dev), "batch": args.batch, "default_tiles": asdict(TILES), "layers": []}
    shapes = layer_shapes(args.batch)
    if dev.type == "cuda" and fused:
        result["compile_ahead"] = compile_ahead(ahead_jobs(shapes, args.sweep))
    for shape in shapes:
        row = measure(shape, variants, dev, args.repeats, args.rounds)
        result["layers"].append(row)
        for name, v in row["variants"].items():
            err = v["error_vs_fp64"]
            print(f"{row['layer']:14s} {name:6s} {1e3 * v['seconds']:9.3f} ms {v['g_connections_per_s']:8.1f} G conn/s "
                  f"{v['tflops']:6.2f} TFLOP/s x{v['time_vs_eager']:.3f} of eager, error {err['output']:.1e} "
                  f"(output) {err['gradients']:.1e} (gradients)")
        path = write(result, f"dac_layer-{dev.type}", args.out)
    if args.sweep and fused:
        largest = max(shapes, key=connections)
        result["sweep"] = measure(largest, SWEEP, dev, args.repeats, args.rounds)
        for name, v in sorted(result["sweep"]["variants"].items(), key=lambda kv: kv[1]["seconds"]):
            print(f"sweep {largest['layer']} {name:16s} {1e3 * v['seconds']:9.3f} ms {v['tflops']:6.2f} TFLOP/s")
        path = write(result, f"dac_layer-{dev.type}", args.out)
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
