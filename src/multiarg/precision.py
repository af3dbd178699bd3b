"""What the fused inner net's precision modes compute, in plain PyTorch, and how far a result is from another.

In ``tf32`` and ``bf16`` mode the kernels of :mod:`multiarg.fused` round the operands of the three ``H x H``
products a step makes (the second layer's forward product; in the backward pass dW2 and the first hidden layer's
gradient) and accumulate in fp32, and ``tf32x3`` makes each of them from three TF32 products; everything else is
fp32. :func:`emulated_inner_net` does the same arithmetic with
PyTorch operations, so the error a mode makes can be measured and tested without a GPU, and a GPU's kernels can be
checked against it; :func:`rounded_inner_net` makes it differentiable, to train with a mode's arithmetic anywhere.
TF32 is modelled as the tensor cores read Triton's operands: the fp32 bits with the 13 low mantissa bits dropped
(Triton emits no rounding instruction; ``tests/test_bench.py`` reads the PTX ``bench/kernel_resources.py`` compiles).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

MODES = ("fp32", "tf32", "tf32x3", "bf16")
TENSORS = ("output", "x", "W1", "b1", "W2", "b2", "W3", "b3")  # the output, then its gradients
# The stated worst relative error (norm) against float64 of each mode, (output, any gradient): a little above
# what bench/precision.py measures for n = 1, 2, 3, H = 64 (bench/results/precision-cpu-interpreted.json).
# fp32's and tf32x3's gradient bounds leave room for one ReLU flipped by fp32's own rounding, which neither has been
# seen to flip.
ERROR_BOUNDS = {"fp32": (1e-6, 1e-3), "tf32": (3e-3, 0.15), "tf32x3": (1e-6, 1e-3), "bf16": (8e-3, 0.3)}


def round_operand(t: torch.Tensor, mode: str) -> torch.Tensor:
    """``t`` as a product in ``mode`` sees it: unchanged in fp32; TF32 keeps 10 mantissa bits (cut), bf16 rounds to
    8 significant bits (to nearest even). (``tf32x3`` splits operands instead: see :func:`product`.)"""
    if mode == "fp32":
        return t
    if t.dtype != torch.float32:
        raise ValueError(f"{mode} rounds float32 operands, got {t.dtype}")
    if mode == "tf32":
        return (t.view(torch.int32) & -(1 << 13)).view(torch.float32)
    if mode == "bf16":
        return t.to(torch.bfloat16).float()
    raise ValueError(f"mode must be one of {MODES} but tf32x3, got {mode!r}")


def product(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    """``a @ b`` as the kernels make it in ``mode``. ``tf32x3`` is Triton's three TF32 products: each operand rounded
    to TF32 to nearest (``cvt.rna``) plus its remainder, big x big + big x remainder + remainder x big, about fp32's
    accuracy."""
    if mode != "tf32x3":
        return round_operand(a, mode) @ round_operand(b, mode)
    a_big, b_big = _tf32_nearest(a), _tf32_nearest(b)
    return a_big @ round_operand(b - b_big, "tf32") + round_operand(a - a_big, "tf32") @ b_big + a_big @ b_big


def _tf32_nearest(t: torch.Tensor) -> torch.Tensor:
    if t.dtype != torch.float32:
        raise ValueError(f"tf32x3 splits float32 operands, got {t.dtype}")
    return ((t.view(torch.int32) + (1 << 12)) & -(1 << 13)).view(torch.float32)


def emulated_inner_net(inner: nn.Module, x: torch.Tensor, grad: torch.Tensor, mode: str = "fp32"
                       ) -> dict[str, torch.Tensor]:
    """The inner net's output on ``x`` ``(points, n_args)`` and the gradients of ``(output * grad).sum()`` with
    respect to ``x`` and every parameter (:data:`TENSORS`), with the fused kernels' rounding in ``mode``. In
    ``fp32`` mode and float64 ``x`` (the parameters are cast to ``x``'s type) it is a float64 reference. Also
    returns ``a2``, the second hidden layer's pre-activations, whose signs decide which units pass a gradient."""
    if inner.depth != 2:
        raise ValueError(f"the fused kernels exist for inner nets of depth 2, not {inner.depth}")
    w1, b1, w2, b2, w3, b3 = (p.detach().to(x.dtype) for p in inner.parameters())
    x, grad = x.detach(), grad.detach().to(x.dtype)

    a1 = x @ w1.T + b1
    h1 = a1.clamp_min(0)
    a2 = product(h1, w2.T, mode) + b2
    h2 = a2.clamp_min(0)
    dh2 = torch.where(a2 > 0, grad[:, None] * w3, 0)
    dh1 = torch.where(a1 > 0, product(dh2, w2, mode), 0)
    return {"output": h2 @ w3[0] + b3, "x": dh1 @ w1, "W1": dh1.T @ x, "b1": dh1.sum(0), "W2": product(dh2.T, h1, mode),
            "b2": dh2.sum(0), "W3": (grad @ h2)[None], "b3": grad.sum()[None], "a2": a2}


def differentiated(evaluate: Callable[[torch.Tensor], torch.Tensor], inner: nn.Module, x: torch.Tensor,
                   grad: torch.Tensor) -> dict[str, torch.Tensor]:
    """``evaluate(x)``, the inner net's output on ``x`` by any path (the module, the fused kernels), and the gradients
    of ``(output * grad).sum()`` with respect to ``x`` and ``inner``'s parameters, named as :data:`TENSORS`: what
    :func:`emulated_inner_net` returns, to compare with it."""
    x = x.detach().clone().requires_grad_()
    out = evaluate(x)
    return dict(zip(TENSORS, [out, *torch.autograd.grad(out, [x, *inner.parameters()], grad)]))


class _Emulated(torch.autograd.Function):
    """:func:`emulated_inner_net` as an autograd node: the backward pass recomputes the forward, as the kernels do."""

    @staticmethod
    def forward(ctx, x, inner, mode, *params):
        ctx.save_for_backward(x)
        ctx.inner, ctx.mode = inner, mode
        return emulated_inner_net(inner, x, x.new_zeros(len(x)), mode)["output"]

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        r = emulated_inner_net(ctx.inner, x, grad, ctx.mode)
        return r["x"], None, None, *(r[name].view_as(p) for name, p in zip(TENSORS[2:], ctx.inner.parameters()))


def rounded_inner_net(inner: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """``inner(x)`` for ``x`` of shape ``(..., n_args)``, differentiable, rounded as the fused kernels round in
    ``mode``: trains on any device with the arithmetic of a GPU's fused kernel (slowly)."""
    flat = x.reshape(-1, x.shape[-1]).float()
    return _Emulated.apply(flat, inner, mode, *inner.parameters()).view(x.shape[:-1])


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """``norm``: ||got - reference|| / ||reference||; ``max``: the largest entry of |got - reference| over that
    of |reference|. (In float64.)"""
    diff, reference = (got.detach() - reference.detach()).double(), reference.detach().double()
    return {"norm": (diff.norm() / reference.norm().clamp_min(1e-30)).item(),
            "max": (diff.abs().max() / reference.abs().max().clamp_min(1e-30)).item()}
