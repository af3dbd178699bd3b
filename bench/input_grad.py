"""The gradient to the input that PGD and AutoAttack take at every iteration, with the network's weights requiring
gradients (as before attacks froze them) and frozen (``multiarg.train.frozen``, as they run now), side by side,
alternating, per activation and inner-net kernel; and how far the two gradients are apart.

    python bench/input_grad.py                  # paper widths, batch 32: bench/results/input_grad-<device>.json

Autograd's own operations skip a weight's gradient nobody asked for; the inner net's chunked and fused kernels and
the DAC layers compute them in their own backward pass unless no weight needs one.
"""
from __future__ import annotations

import argparse

import torch
from common import best_of, device, environment, load_config, outer_net, write

from multiarg.activations import set_kernel
from multiarg.data import SHAPES
from multiarg.train import frozen

NETWORKS = (("cifar10", "cnn"), ("mnist", "mlp"))
VARIANTS = {"cpu": "arg2/eager,arg2/chunked,dac/eager,relu/eager",
            "cuda": "arg2/eager,arg2/chunked,arg2/fused-tf32,arg2/fused-bf16,dac/eager,dac/fused-fp32,relu/eager"}


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    return torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)[0]


def measure(config: dict, dataset: str, arch: str, variant: str, batch: int, dev: torch.device, repeats: int,
            rounds: int) -> dict:
    activation, kernel = variant.split("/")
    set_kernel(kernel)
    try:
        torch.manual_seed(0)
        model = outer_net(config, dataset, arch, activation).to(dev).eval()
        x, y = torch.rand(batch, *SHAPES[dataset][0], device=dev), torch.randint(0, 10, (batch,), device=dev)

        def without_weights():
            with frozen(model):
                return input_gradient(model, x, y)

        calls = {"weights": lambda: input_gradient(model, x, y), "frozen": without_weights}
        difference = (calls["weights"]() - calls["frozen"]()).abs().max().item()
        best = best_of(calls, repeats, rounds, dev)
    finally:
        set_kernel("eager")
    return {"seconds": best, "weights_over_frozen": best["weights"] / best["frozen"], "max_abs_difference": difference}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="merged over config.yaml (default: the paper's widths)")
    p.add_argument("--variants", default=None, help="activation/kernel pairs (default: this device's in VARIANTS)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev, config = device(), load_config(args.configfile)
    variants = (args.variants or VARIANTS.get(dev.type, VARIANTS["cpu"])).split(",")
    result = {**environment(dev), "configfile": args.configfile, "batch": args.batch, "networks": {}}
    for dataset, arch in NETWORKS:
        for variant in variants:
            name = f"{dataset}/{arch}/{variant}"
            result["networks"][name] = r = measure(config, dataset, arch, variant, args.batch, dev, args.repeats,
                                                   args.rounds)
            print(f"{name}: weights {1e3 * r['seconds']['weights']:.1f} ms, frozen {1e3 * r['seconds']['frozen']:.1f}"
                  f" ms (x{r['weights_over_frozen']:.2f}), max diff {r['max_abs_difference']:.1e}", flush=True)
            path = write(result, f"input_grad-{dev.type}", args.out)
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
