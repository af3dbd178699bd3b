"""Registers, stack (spills) and shared memory of the fused inner-net and DAC kernels as compiled for an H100/H200
(sm_90), and how many programs of each fit on one multiprocessor. Needs no GPU: Triton compiles for the target
here and the cuobjdump it ships reads the binary, so a launch setting's cost in on-chip resources is known before
a GPU is lent.

    python bench/kernel_resources.py                              # n = 1, 2, 3, every mode, every (block, warps)
    python bench/kernel_resources.py --n-args 2 --modes tf32 --blocks 64 --dac none

The inner net's (block, warps) pairs are those of ``inner_net.SWEEP``, DAC's tiles those of ``dac_layer.SWEEP``.
Compiled with the specialisation a launch on fresh tensors gets (aligned pointers; the sizes that the paper's
layers make multiples of 16), by this machine's Triton, which may not be the GPU machine's: a close account, not
the exact binary a GPU run loads; so the file it writes names the Triton that compiled,
``bench/results/kernel_resources-sm90-triton<major.minor>.json``. To account for the GPU image's Triton (3.6):
``pip install --no-deps --target /tmp/t36 triton==3.6.0`` and run with ``PYTHONPATH=/tmp/t36``.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
import triton
from common import environment, write
from dac_layer import SWEEP as DAC_SWEEP
from inner_net import SWEEP
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from multiarg import fused, fused_dac

TARGET = GPUTarget("cuda", 90, 32)
# One sm_90 multiprocessor: registers, shared memory (1 KiB of it reserved per program), warps, programs.
SM = {"registers": 65536, "shared_bytes": 233472, "reserved_shared_bytes": 1024, "warps": 64, "programs": 32}


@functools.cache  # looked up once, not once per compiled kernel
def _cuobjdump() -> str:
    bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    found = str(bundled) if bundled.exists() else shutil.which("cuobjdump")
    if not found:
        raise SystemExit("cuobjdump not found (Triton's NVIDIA backend ships one)")
    return found


def usage(kernel, constexprs: dict, warps: int, multiples_of_16: tuple[str, ...] = ()) -> dict:
    """Compile one kernel for sm_90 and read its registers and stack from the binary, its shared memory from
    Triton; and the programs one multiprocessor holds at once. Specialised as a launch on fresh tensors is: every
    pointer 16-byte aligned, and the integer arguments in ``multiples_of_16`` divisible by 16."""
    signature = {name: "constexpr" if name in constexprs else "*fp32" if name.endswith("_ptr") else "i32"
                 for name in kernel.arg_names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(kernel.arg_names)
             if name.endswith("_ptr") or name in multiples_of_16}
    compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=TARGET,
                              options={"num_warps": warps})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        report, sass = (subprocess.run([_cuobjdump(), flag, cubin.name], capture_output=True, text=True,
                                       check=True).stdout for flag in ("-res-usage", "-sass"))
    registers, stack = map(int, re.search(r"REG:(\d+) STACK:(\d+)", report).groups())
    shared = compiled.metadata.shared
    return {"registers": registers, "stack_bytes": stack, "shared_bytes": shared,
            "programs_per_sm": resident(registers, shared, warps), "instructions": instruction_mix(sass),
            "conversions": conversions(compiled.asm["ptx"])}


_CONVERSION = re.compile(r"\bcvt(?:\.\w+)*\.(?:tf32|bf16x2|bf16)\.f32\b")


def conversions(ptx: str) -> dict[str, int]:
    """The PTX's conversions of fp32 values to TF32 or bfloat16 operands, counted by form: how (and whether) the
    kernel rounds what its tensor cores read (``rn``: to nearest even, ``rna``: to nearest, ties away)."""
    found = _CONVERSION.findall(ptx)
    return {form: found.count(form) for form in sorted(set(found))}


# SASS opcodes by what they occupy: fp32 pipes, tensor cores, global and shared memory, barriers, integer pipes.
OPCODE_CLASSES = {"fp32": ("FFMA", "FADD", "FMUL", "FMNMX", "FSEL", "FSETP"), "tensor": ("HMMA", "HGMMA"),
                  "global_memory": ("LDG", "STG", "LD", "ST"), "local_memory": ("LDL", "STL"),
                  "shared_memory": ("LDS", "STS", "LDSM"), "barrier": ("BAR",),
                  "integer": ("IMAD", "IADD3", "ISETP", "LEA", "SHF", "LOP3", "IABS", "I2F", "F2I", "SEL")}
_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)")


def instruction_mix(sass: str) -> dict[str, int]:
    """Static count of a kernel's SASS instructions in :data:`OPCODE_CLASSES` and in all (not executed counts: a
    loop body counts once, unrolled copies each)."""
    opcodes = _OPCODE.findall(sass)
    mix = {name: sum(op in members for op in opcodes) for name, members in OPCODE_CLASSES.items()}
    return {**mix, "total": len(opcodes)}


def resident(registers: int, shared: int, warps: int) -> int:
    """Programs of this size one sm_90 multiprocessor holds at once (registers go to warps in 256s)."""
    per_warp = -(-registers * 32 // 256) * 256
    by_registers = SM["registers"] // per_warp // warps
    by_shared = SM["shared_bytes"] // (shared + SM["reserved_shared_bytes"])
    return min(by_registers, by_shared, SM["warps"] // warps, SM["programs"])


def measure(n_args: int, mode: str, block: int, warps: int, hidden: int) -> dict:
    flags = {"N_ARGS": n_args, "H": hidden, "BLOCK": block, "MODE": mode, "EMULATE": False}
    sizes = ("M",)  # units x locations of a layer
    backward = {**flags, "ARGS_P2": triton.next_power_of_2(n_args)}
    # input_grad: the backward kernel without the weights' gradients, as PGD and AutoAttack run it
    return {"n_args": n_args, "mode": mode, "block": block, "warps": warps,
            "forward": usage(fused._forward_kernel, flags, warps, sizes),
            "backward": usage(fused._backward_kernel, {**backward, "WEIGHTS": True}, warps, sizes),
            "input_grad": usage(fused._backward_kernel, {**backward, "WEIGHTS": False}, warps, sizes)}


def measure_dac(tiles: fused_dac.Tiles) -> dict:
    """DAC's three kernels under ``tiles`` (``L``, the locations per image, a multiple of 16 as in the paper's
    CNN; inputs and outputs per layer are not)."""
    sizes = {"UNROLL": tiles.unroll, "BP": tiles.points, "BI": tiles.units, "BJ": tiles.units}
    kernels = {"forward": fused_dac._forward_kernel, "input_grad": fused_dac._input_grad_kernel,
               "weight_grad": fused_dac._weight_grad_kernel}
    return {"tiles": asdict(tiles), "default": tiles == fused_dac.TILES,
            **{name: usage(kernel, {k: v for k, v in sizes.items() if k in kernel.arg_names}, tiles.warps, ("L",))
               for name, kernel in kernels.items()}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-args", default="1,2,3")
    p.add_argument("--modes", default=",".join(fused.MODES))
    p.add_argument("--blocks", default=None, help="comma-separated points per block (default: those in SWEEP)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dac", choices=("sweep", "default", "none"), default="sweep",
                   help="DAC kernels: under every Tiles of dac_layer.SWEEP, the default Tiles only, or none")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    shapes = sorted({(launch.block, launch.warps) for launch in SWEEP})
    if args.blocks:
        shapes = [(b, w) for b, w in shapes if str(b) in args.blocks.split(",")]
    result = {**environment(torch.device("cpu")), "device": f"sm_{TARGET.arch} (compiled here, no GPU)",
              "hidden": args.hidden, "multiprocessor": SM, "kernels": []}
    for n, mode, (block, warps) in itertools.product(map(int, args.n_args.split(",")), args.modes.split(","), shapes):
        row = measure(n, mode, block, warps, args.hidden)
        row["default"] = (block, warps) == (fused.LAUNCHES[mode].block, fused.LAUNCHES[mode].warps)
        result["kernels"].append(row)
        f, b, i = row["forward"], row["backward"], row["input_grad"]
        print(f"n={n} {mode:4s} block {block:3d} warps {warps}: forward {f['registers']:3d} registers "
              f"{f['stack_bytes']:4d} B stack {f['programs_per_sm']} per SM; backward {b['registers']:3d} registers "
              f"{b['stack_bytes']:4d} B stack {b['shared_bytes'] // 1024:3d} KiB shared {b['programs_per_sm']} per SM; "
              f"input only {i['registers']:3d} registers {i['stack_bytes']:4d} B stack {i['programs_per_sm']} per SM"
              f"{'  (default)' if row['default'] else ''}")
    dac_tiles = {"sweep": list(DAC_SWEEP.values()), "default": [fused_dac.TILES], "none": []}[args.dac]
    result["dac"] = [measure_dac(tiles) for tiles in dac_tiles]
    for row in result["dac"]:
        t = row["tiles"]
        print(f"DAC {t['points']:3d} points x {t['units']:2d} units, unroll {t['unroll']}, warps {t['warps']}: " +
              "; ".join(f"{k} {row[k]['registers']:3d} registers {row[k]['stack_bytes']:4d} B stack "
                        f"{row[k]['programs_per_sm']} per SM" for k in ("forward", "input_grad", "weight_grad")) +
              ("  (default)" if row["default"] else ""))
    version = ".".join(triton.__version__.split(".")[:2])
    print("wrote", write(result, f"kernel_resources-sm{TARGET.arch}-triton{version}", args.out))
    return result


if __name__ == "__main__":
    main()
