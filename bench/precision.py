"""Error of the fused inner net's precision modes against float64, beside a PyTorch emulation of their rounding.

    python bench/precision.py                      # CUDA: the kernels as the GPU runs them
    TRITON_INTERPRET=1 python bench/precision.py   # CPU: through Triton's interpreter (fewer points)

For n = 1, 2, 3 (H = 64, PyTorch's default initialisation), inputs from N(0, 1) (what a LayerNorm passes) and
output gradients from N(0, 1) (a loss gradient's mixed signs), over several seeds, the worst relative error of the
output and of each gradient (``norm`` and ``max``, see :func:`multiarg.precision.relative_error`):
``kernel_vs_fp64``, the fused kernels against a float64 evaluation; ``emulation_vs_fp64``, the same for
:func:`multiarg.precision.emulated_inner_net`, which rounds as the kernels are meant to; ``kernel_vs_emulation``,
whether they do. ``flipped_units`` is the fraction of second-layer ReLUs that the rounding switches on or off:
each passes a whole term of a gradient or none of it, which is why the gradients' error is far larger than the
output's. Without CUDA or the interpreter only the emulation is measured. The JSON,
``bench/results/precision-<device>.json`` (``-interpreted`` under the interpreter), holds the device and command.
"""
from __future__ import annotations

import argparse
import itertools

import torch
from common import device, environment, write

from multiarg.activations import InnerNet
from multiarg.fused import fused_inner, supported
from multiarg.precision import MODES, TENSORS, differentiated, emulated_inner_net, relative_error


def _worst(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: max(r[k] for r in rows) for k in rows[0]}


def measure(n_args: int, hidden: int, points: int, seeds: int, mode: str, dev: torch.device) -> dict:
    """Worst errors over ``seeds`` nets and inputs for one mode and argument count."""
    errors: dict[str, dict[str, list]] = {}
    flipped = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        inner = InnerNet(n_args, hidden).to(dev)
        x, grad = torch.randn(points, n_args, device=dev), torch.randn(points, device=dev)
        reference = emulated_inner_net(inner, x.double(), grad)
        emulated = emulated_inner_net(inner, x, grad, mode)
        flipped.append(((emulated["h2"] > 0) != (reference["h2"] > 0)).double().mean().item())
        pairs = {"emulation_vs_fp64": (emulated, reference)}
        if supported(inner, x):
            kernel = differentiated(lambda v: fused_inner(inner, v, mode), inner, x, grad)
            pairs.update(kernel_vs_fp64=(kernel, reference), kernel_vs_emulation=(kernel, emulated))
        for what, (got, ref) in pairs.items():
            for name in TENSORS:
                errors.setdefault(what, {}).setdefault(name, []).append(
                    relative_error(got[name].reshape(ref[name].shape), ref[name]))
    return {"flipped_units": max(flipped),
            **{what: {name: _worst(rows) for name, rows in by_tensor.items()} for what, by_tensor in errors.items()}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=None, help="argument tuples per net (default: 65536 on CUDA, "
                                                            "4096 otherwise)")
    p.add_argument("--n-args", default="1,2,3")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = device()
    env = environment(dev)
    points = args.points or (1 << 16 if dev.type == "cuda" else 4096)
    result = {**env, "points": points, "hidden": args.hidden, "seeds": args.seeds, "modes": {}}
    name = f"precision-{dev.type}" + ("-interpreted" if env["triton_interpreter"] else "")
    for mode, n in itertools.product(MODES, map(int, args.n_args.split(","))):
        r = result["modes"].setdefault(mode, {})[n] = measure(n, args.hidden, points, args.seeds, mode, dev)
        source = "kernel" if "kernel_vs_fp64" in r else "emulation"
        measured = r[f"{source}_vs_fp64"]
        line = (f"{mode} n={n}: {source} vs float64, output {measured['output']['norm']:.1e}, gradients up to "
                f"{max(measured[t]['norm'] for t in TENSORS[1:]):.1e} (norm); flipped units {r['flipped_units']:.1e}")
        if "kernel_vs_emulation" in r:
            line += f"; kernel vs emulation {max(e['norm'] for e in r['kernel_vs_emulation'].values()):.1e}"
        print(line)
        path = write(result, name, args.out)
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
