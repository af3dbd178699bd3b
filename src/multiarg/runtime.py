"""Seeds and devices, decided in one place."""
from __future__ import annotations

import hashlib

import torch


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
