"""Learned multi-argument activation functions.

An :class:`InnerNet` is a tiny MLP ``n -> hidden -> hidden -> 1``; one instance is shared by every
unit of every layer of an outer network, like a canonical activation function. A
:class:`MultiArgActivation` applies it to a layer's pre-activations, read as ``n`` contiguous
slices along the feature (channel) axis, so a layer with ``n * C`` pre-activations has ``C`` outputs.
:func:`set_kernel` chooses how inner nets (and DAC's connections) are evaluated: eager PyTorch (the reference), PyTorch
over chunks of points with recomputation (:mod:`multiarg.chunked`, any device), or fused Triton kernels.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .chunked import chunk_size, chunked_inner_net
from .precision import MODES

FIXED = ("relu", "gamma", "dac")  # one-argument designs without an inner net (see adaptive.py, dendritic.py)
KERNELS = ("eager", "chunked", *(f"fused-{mode}" for mode in MODES))  # see multiarg.chunked, multiarg.fused
_kernel = "eager"
_fell_back = False  # whether a layer ran eager since set_kernel chose another kernel
_NAME = re.compile(r"^(?P<design>relu|gamma|dac|arg(?P<n>[1-9])(?:-(?P<init>xavier))?)(?:-(?P<budget>flops|width))?$")


@dataclass(frozen=True)
class ActivationSpec:
    """What an activation name stands for: ``relu``; ``gamma`` (adaptive family) and ``dac``
    (dendrite-activated connections) from the related work; ``argN`` / ``argN-xavier`` (learned inner net).
    A ``-flops`` suffix (``relu-flops``, ``arg1-flops``) names the same design as a baseline matched to the reference
    in forward FLOPs instead of parameters; a ``-width`` suffix (``relu-width``), the design at the reference's own
    widths, unmatched, so a run can hold it beside the matched baseline and tell what the extra width buys."""

    name: str
    n_args: int  # pre-activations per unit (1 for ReLU)
    learned: bool
    init: str | None  # "pretrained" (session I) or "xavier"; None for ReLU
    design: str  # the name without the matching budget: what is built and, for argN, pretrained
    budget: str = "params"  # what a baseline of this name equalises: "params", "flops" or "width"

    @classmethod
    def parse(cls, name: str) -> "ActivationSpec":
        m = _NAME.match(name)
        if not m or (m["init"] and m["budget"]):  # a Xavier control is the reference's own size, never matched
            raise ValueError(f"unknown activation {name!r}: expected relu, gamma, dac, argN or argN-xavier, "
                             "or relu, gamma, dac or argN with -flops or -width")
        design, budget = m["design"], m["budget"] or "params"
        if design in FIXED:
            return cls(name, 1, False, None, design, budget)
        return cls(name, int(m["n"]), True, m["init"] or "pretrained", design, budget)


class InnerNet(nn.Module):
    """MLP ``n_args -> hidden (-> hidden)* -> 1`` with ReLU, mapping ``(..., n_args)`` to ``(...)``."""

    def __init__(self, n_args: int, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.n_args, self.hidden, self.depth = n_args, hidden, depth
        layers: list[nn.Module] = []
        width = n_args
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Without autograd nothing needs every hidden activation at once, so they are made a chunk at a time
        # (multiarg.chunked.chunk_size): bounded memory, and on a CPU they stay in cache.
        points, chunk = x.numel() // self.n_args, chunk_size(x.device)
        if torch.is_grad_enabled() or points <= chunk:
            return self.net(x).squeeze(-1)
        pieces = x.reshape(points, self.n_args).split(chunk)
        return torch.cat([self.net(piece) for piece in pieces]).view(x.shape[:-1])

    def xavier_(self, generator: torch.Generator | None = None) -> "InnerNet":
        """Glorot-uniform weights and zero biases: the paper's un-pretrained control."""
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)
        return self


def set_kernel(name: str) -> str:
    """Evaluate every :class:`MultiArgActivation` and DAC layer with ``name`` (one of :data:`KERNELS`) from now on;
    returns the previous choice. ``chunked`` runs depth-2 inner nets on any device (DAC layers, whose eager path is
    already blocked, stay eager). A fused kernel runs where :func:`multiarg.fused.supported` (inner nets: CUDA
    tensors, depth 2, a power-of-two width) or :func:`multiarg.fused_dac.supported` (DAC: CUDA fp32 tensors)
    allows; elsewhere the eager reference runs, with a warning. DAC's kernels compute in fp32 in every mode."""
    global _kernel, _fell_back
    if name not in KERNELS:
        raise ValueError(f"inner-net kernel must be one of {KERNELS}, got {name!r}")
    previous, _kernel, _fell_back = _kernel, name, False
    return previous


def fell_back() -> bool:
    """Whether some layer ran the eager kernel instead of the chosen one since :func:`set_kernel` (the warning
    shows once per process; this is what a model's record says)."""
    return _fell_back


def get_kernel() -> str:
    """The inner-net kernel chosen by :func:`set_kernel` (``eager`` by default)."""
    return _kernel


def fused_mode(runs_here: Callable[[], bool]) -> str | None:
    """The chosen fused kernel's precision mode if one is chosen and ``runs_here()``; None for eager (with a
    warning where a fused kernel was chosen but cannot run). ``runs_here`` is only called for a fused kernel, so
    Triton is imported only then."""
    if not _kernel.startswith("fused-"):
        return None
    if runs_here():
        return _kernel.removeprefix("fused-")
    _warn_eager()
    return None


def _warn_eager():
    global _fell_back
    _fell_back = True
    warnings.warn(f"{_kernel} cannot run on this device or layer; using the eager kernel", RuntimeWarning, stacklevel=3)


def _inner_runs_fused(inner: InnerNet, x: torch.Tensor) -> bool:
    from . import fused  # only here: Triton is optional and slow to import

    return fused.supported(inner, x)


def load_inner(record: dict) -> InnerNet:
    """The inner net of a session-I record (``{"n_args", "hidden", "depth", "state_dict", ...}``)."""
    inner = InnerNet(record["n_args"], record["hidden"], record["depth"])
    inner.load_state_dict(record["state_dict"])
    return inner


def inner_from_state(state: dict) -> InnerNet:
    """Rebuild an inner net from its state dict alone (shapes give arguments, width and depth), as session II
    snapshots it."""
    linear = sorted({k.split(".")[1] for k in state if k.endswith("weight")}, key=int)
    hidden, n_args = state[f"net.{linear[0]}.weight"].shape
    inner = InnerNet(n_args, hidden, len(linear) - 1)
    inner.load_state_dict(state)
    return inner.eval()


@torch.no_grad()
def values_at(inner: nn.Module, points: np.ndarray) -> np.ndarray:
    """An inner net's values at ``points`` (``(..., n_args)``), in float64 for the analyses."""
    return inner(torch.as_tensor(points, dtype=torch.float32)).double().numpy()


class MultiArgActivation(nn.Module):
    """Apply a (shared) inner net to ``n_args`` slices of axis ``dim``.

    Input ``(..., n_args * C, ...)`` along ``dim`` gives ``(..., C, ...)``: unit ``c`` receives the
    pre-activations ``c, C + c, ..., (n_args - 1) * C + c`` (the paper's slice-and-concatenate).
    """

    def __init__(self, inner: InnerNet | None = None, n_args: int = 2, dim: int = 1):
        super().__init__()
        self.inner = inner if inner is not None else InnerNet(n_args)
        self.n_args, self.dim = self.inner.n_args, dim

    def _split(self, z: torch.Tensor) -> torch.Tensor:
        z = z.movedim(self.dim, -1)
        if z.shape[-1] % self.n_args:
            raise ValueError(f"{z.shape[-1]} features cannot be split into {self.n_args} arguments")
        return z.unflatten(-1, (self.n_args, -1)).transpose(-1, -2)  # (..., C, n_args)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        mode = fused_mode(lambda: _inner_runs_fused(self.inner, z))
        if mode is not None:
            from .fused import fused_activation  # reads z in place: no transposed copies

            return fused_activation(self.inner, z, self.dim, mode)
        args = self._split(z)
        if _kernel == "chunked":
            if self.inner.depth == 2:
                return chunked_inner_net(self.inner, args).movedim(-1, self.dim)
            _warn_eager()
        return self.inner(args).movedim(-1, self.dim)

    def arguments(self, z: torch.Tensor) -> torch.Tensor:
        """The ``(points, n_args)`` inputs this module feeds to its inner net for ``z``."""
        return self._split(z).reshape(-1, self.n_args)
