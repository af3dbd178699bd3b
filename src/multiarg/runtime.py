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
