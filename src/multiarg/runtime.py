"""Seeds and devices, decided in one place."""
from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

import torch

from .jobserver import ENV as JOB_SERVER


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts, e.g. ``derive_seed(seed, "session", 2)``."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cpu``/``cuda``/``cuda:N`` force a device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


TF32_OPS = ("conv", "matmul")


def set_tf32(ops) -> None:
    """Let CUDA's float32 convolutions (``"conv"``) and matrix products (``"matmul"``) round their operands to TF32
    on tensor cores; the others compute in full fp32. PyTorch's default is ``("conv",)``; CPUs compute in fp32
    either way. Through the flags torch.compile and every library read, which a mix with PyTorch's newer
    ``fp32_precision`` settings would make raise."""
    unknown = set(ops) - set(TF32_OPS)
    if unknown:
        raise ValueError(f"TF32 applies to {TF32_OPS}, not {sorted(unknown)}")
    torch.backends.cudnn.allow_tf32 = "conv" in ops
    torch.backends.cuda.matmul.allow_tf32 = "matmul" in ops


def tf32_ops() -> list[str]:
    """The operations allowed to round to TF32, as now set (by :func:`set_tf32`, or by a library through PyTorch's
    newer ``fp32_precision`` settings, after which the legacy flags refuse to be read)."""
    try:
        flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    except RuntimeError:
        flags = tuple(backend.fp32_precision == "tf32"
                      for backend in (torch.backends.cudnn.conv, torch.backends.cuda.matmul))
    return [op for op, on in zip(TF32_OPS, flags) if on]


# The instruction set bounds the kernels ATen, oneDNN and MKL pick, and their float sums differ with it: on one CPU,
# one CNN training job ended 36 ways under 36 settings of the three (bench/results/cpu_isa-cpu.json). Pinning all
# three keeps the set from varying with the CPU (other differences between CPU models may remain); "auto" leaves
# each library to its CPU's best.
CPU_ISAS = {
    "auto": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512"},
}


def pin_cpu_isa(isa: str, argv: list[str] | None) -> None:
    """Make this process compute with the CPU instruction set ``isa`` (a key of :data:`CPU_ISAS`).

    The libraries read their variables once, when first used, so a process started without them is replaced by a
    fresh ``python -m multiarg *argv`` that has them (``argv`` None: called in-process, where that is an error).
    Raises when the CPU lacks the set."""
    wanted = CPU_ISAS[isa]
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        if argv is None:
            raise RuntimeError(f"cpu_isa {isa!r} needs {wanted} in the environment before PyTorch starts")
        env = {**os.environ, **wanted}
        env.pop(JOB_SERVER, None)  # its forks share the server's variables, which lack these
        os.execve(sys.executable, [sys.executable, "-m", "multiarg", *argv], env)
    have = torch.backends.cpu.get_cpu_capability()
    if wanted and have.lower() != wanted["ATEN_CPU_CAPABILITY"]:
        raise RuntimeError(f"cpu_isa {isa!r}: this CPU ({cpu_model()}) runs PyTorch's {have} kernels at best")


def cpu_model() -> str:
    """The CPU's model name (Linux), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
