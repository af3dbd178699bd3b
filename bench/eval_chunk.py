"""Evaluation without autograd (test sets, CIFAR-10-C, the analyses) of the workflow's networks with the eager inner
net, whose hidden activations are then made a chunk of points at a time (``multiarg.chunked.chunk_size``), at
several chunk sizes side by side, alternating; and how far the outputs of each size are from the first's.

    python bench/eval_chunk.py                    # paper widths, batch 32: bench/results/eval_chunk-<device>.json
    python bench/eval_chunk.py --configfile workflow/configs/demo.yaml --batch 1000      # eval_chunk-demo-<device>
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import best_of, device, environment, load_config, outer_net, write

from multiarg import chunked
from multiarg.data import SHAPES

NETWORKS = (("cifar10", "cnn"), ("mnist", "mlp"))


def _evaluate(model: torch.nn.Module, x: torch.Tensor, chunk: int) -> torch.Tensor:
    saved = dict(chunked.CHUNKS)
    chunked.CHUNKS[x.device.type] = chunk
    try:
        with torch.no_grad():
            return model(x)
    finally:
        chunked.CHUNKS.clear()
        chunked.CHUNKS.update(saved)


def measure(config: dict, dataset: str, arch: str, activation: str, chunks: list[int], batch: int,
            dev: torch.device, repeats: int, rounds: int) -> dict:
    """Seconds per evaluation batch at each chunk size, and each size's largest output difference from the first's."""
    torch.manual_seed(0)
    model = outer_net(config, dataset, arch, activation).to(dev).eval()
    x = torch.randn(batch, *SHAPES[dataset][0], device=dev)
    calls = {chunk: (lambda chunk=chunk: _evaluate(model, x, chunk)) for chunk in chunks}
    first = calls[chunks[0]]()
    best = best_of(calls, repeats, rounds, dev)
    return {str(chunk): {"seconds": s, "vs_first": best[chunks[0]] / s,
                         "max_abs_difference": (calls[chunk]() - first).abs().max().item()}
            for chunk, s in best.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="merged over config.yaml (default: the paper's widths)")
    p.add_argument("--activations", default="arg2")
    p.add_argument("--chunks", default=f"{chunked.DEFAULT_CHUNK},{1 << 14}", help="chunk sizes, the first the baseline")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev, config = device(), load_config(args.configfile)
    chunks = [int(c) for c in args.chunks.split(",")]
    result = {**environment(dev), "configfile": args.configfile, "batch": args.batch, "chunks": chunks,
              "networks": {}}
    scale = f"-{Path(args.configfile).stem}" if args.configfile else ""
    for dataset, arch in NETWORKS:
        for activation in args.activations.split(","):
            name = f"{dataset}/{arch}/{activation}"
            result["networks"][name] = r = measure(config, dataset, arch, activation, chunks, args.batch, dev,
                                                   args.repeats, args.rounds)
            print(name, "  ".join(f"chunk {c}: {1e3 * v['seconds']:.1f} ms (x{v['vs_first']:.2f}, "
                                  f"max diff {v['max_abs_difference']:.1e})" for c, v in r.items()), flush=True)
            path = write(result, f"eval_chunk{scale}-{dev.type}", args.out)
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
