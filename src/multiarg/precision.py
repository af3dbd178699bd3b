"""What the fused inner net's precision modes compute, in plain PyTorch, and how far a result is from another.

In ``tf32`` and ``bf16`` mode the kernels of :mod:`multiarg.fused` round the operands of the three ``H x H``
products a step makes (the second layer's forward product; in the backward pass dW2 and the first hidden layer's
gradient) and accumulate in fp32, and ``tf32x3`` makes each of them from three TF32 products; everything else is
fp32. :func:`emulated_inner_net` does the same arithmetic with PyTorch operations, so the error a mode makes can
be measured and tested without a GPU, and a GPU's kernels can be checked against it;
:func:`multiarg.chunked.chunked_inner_net` makes it differentiable, to train with a mode's arithmetic anywhere. TF32 is
modelled as the tensor cores read Triton's operands: the fp32 bits with the 13 low mantissa bits dropped
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


def hidden_pass(weights: tuple[torch.Tensor, ...], x: torch.Tensor, mode: str = "fp32"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h1, h2)``, the hidden layers' outputs of the depth-2 inner net with ``weights`` ``(W1, b1, W2, b2, W3, b3)``
    on ``x`` ``(points, n_args)``, the H x H product rounded as in ``mode``."""
    w1, b1, w2, b2, _, _ = weights
    h1 = torch.addmm(b1, x, w1.T).clamp_min_(0)
    return h1, product(h1, w2.T, mode).add_(b2).clamp_min_(0)


def output_pass(weights: tuple[torch.Tensor, ...], h2: torch.Tensor) -> torch.Tensor:
    """The inner net's output from its second hidden layer's ``h2``."""
    if not len(h2):  # addmv broadcasts the bias to one element where there are no rows
        return h2.new_zeros(0)
    return torch.addmv(weights[5], h2, weights[4][0])


def backward_pass(weights: tuple[torch.Tensor, ...], x: torch.Tensor, grad: torch.Tensor,
                  hidden: tuple[torch.Tensor, torch.Tensor], mode: str = "fp32", of_weights: bool = True
                  ) -> dict[str, torch.Tensor]:
    """The gradients of ``(output * grad).sum()`` with respect to ``x`` and, if ``of_weights``, the weights (named as
    :data:`TENSORS`), from the ``hidden`` ``(h1, h2)`` of :func:`hidden_pass`, rounded as in ``mode``."""
    w1, _, w2, _, w3, _ = weights
    h1, h2 = hidden
    # ReLU's backward in one pass, as autograd runs it: h > 0 exactly where the pre-activation is
    dh2 = torch.ops.aten.threshold_backward(torch.outer(grad, w3[0]), h2, 0)
    dh1 = torch.ops.aten.threshold_backward(product(dh2, w2, mode), h1, 0)
    if not of_weights:
        return {"x": dh1 @ w1}
    return {"x": dh1 @ w1, "W1": dh1.T @ x, "b1": dh1.sum(0), "W2": product(dh2.T, h1, mode), "b2": dh2.sum(0),
            "W3": (grad @ h2)[None], "b3": grad.sum()[None]}


def emulated_inner_net(inner: nn.Module, x: torch.Tensor, grad: torch.Tensor, mode: str = "fp32"
                       ) -> dict[str, torch.Tensor]:
    """The inner net's output on ``x`` ``(points, n_args)`` and the gradients of ``(output * grad).sum()`` with
    respect to ``x`` and every parameter (:data:`TENSORS`), with the fused kernels' rounding in ``mode``. In
    ``fp32`` mode and float64 ``x`` (the parameters are cast to ``x``'s type) it is a float64 reference. Also
    returns ``h2``, the second hidden layer's output, whose zeros say which units pass no gradient."""
    weights = depth2_weights(inner, x.dtype)
    x, grad = x.detach(), grad.detach().to(x.dtype)
    hidden = hidden_pass(weights, x, mode)
    return {"output": output_pass(weights, hidden[1]), **backward_pass(weights, x, grad, hidden, mode), "h2": hidden[1]}


def require_depth2(inner: nn.Module) -> None:
    """A ValueError unless ``inner`` has depth 2: what the fused kernels, their emulation and :mod:`multiarg.chunked`
    compute."""
    if inner.depth != 2:
        raise ValueError(f"the fused kernels exist for inner nets of depth 2, not {inner.depth}")


def depth2_weights(inner: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """``inner``'s parameters, detached and cast to ``dtype`` (:func:`require_depth2`)."""
    require_depth2(inner)
    return tuple(p.detach().to(dtype) for p in inner.parameters())


def differentiated(evaluate: Callable[[torch.Tensor], torch.Tensor], inner: nn.Module, x: torch.Tensor,
                   grad: torch.Tensor) -> dict[str, torch.Tensor]:
    """``evaluate(x)``, the inner net's output on ``x`` by any path (the module, the fused kernels), and the gradients
    of ``(output * grad).sum()`` with respect to ``x`` and ``inner``'s parameters, named as :data:`TENSORS`: what
    :func:`emulated_inner_net` returns, to compare with it."""
    x = x.detach().clone().requires_grad_()
    out = evaluate(x)
    return dict(zip(TENSORS, [out, *torch.autograd.grad(out, [x, *inner.parameters()], grad)]))


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """``norm``: ||got - reference|| / ||reference||; ``max``: the largest entry of |got - reference| over that
    of |reference|. (In float64.)"""
    diff, reference = (got.detach() - reference.detach()).double(), reference.detach().double()
    return {"norm": (diff.norm() / reference.norm().clamp_min(1e-30)).item(),
            "max": (diff.abs().max() / reference.abs().max().clamp_min(1e-30)).item()}
