"""Dendrite-activated connections (DAC), the other related-work seed: every connection filters its
input with its own bias before the weighted sum,

    y_j = sum_i w_ji relu(x_i + b_ji) + c_j,

in dense and convolutional form. The batch x in x out tensor of filtered inputs is never held whole: the eager
forward and backward walk over blocks of output units and recompute each block's filtered inputs, so memory
stays at one block (``block_elements``) while the arithmetic is that of the naive formula. With a fused kernel
chosen (:func:`multiarg.activations.set_kernel`) the layers run :mod:`multiarg.fused_dac`'s Triton kernels
instead, which keep every filtered input in registers.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .activations import fused_mode

BLOCK_ELEMENTS = 1 << 22  # filtered inputs held at once (16 MiB in fp32)


def _blocks(n_rows: int, n_in: int, n_out: int, block_elements: int):
    size = max(1, block_elements // max(1, n_rows * n_in))
    return [slice(j, min(j + size, n_out)) for j in range(0, n_out, size)]


class _DendriticProduct(torch.autograd.Function):
    """The eager path. Each block's filtered inputs are one tensor, reused in place (relu; in the backward pass,
    the weight gradient's operand, then relu' times the output gradient, then that times the weights), so a block
    costs one allocation and few passes over memory."""

    @staticmethod
    def forward(ctx, x, weight, dendrite_bias, block_elements):
        out = x.new_empty(x.shape[0], weight.shape[0])
        for j in _blocks(x.shape[0], x.shape[1], weight.shape[0], block_elements):
            filtered = (x[:, None, :] + dendrite_bias[None, j]).clamp_min_(0)
            out[:, j] = filtered.mul_(weight[j]).sum(-1)
        ctx.save_for_backward(x, weight, dendrite_bias)
        ctx.block_elements = block_elements
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, dendrite_bias = ctx.saved_tensors
        of_weights = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]  # not in an attack on a frozen network
        grad_x, grad_w, grad_b = torch.zeros_like(x), torch.empty_like(weight), torch.empty_like(dendrite_bias)
        for j in _blocks(x.shape[0], x.shape[1], weight.shape[0], ctx.block_elements):
            g = grad[:, j]
            filtered = (x[:, None, :] + dendrite_bias[None, j]).clamp_min_(0)
            if of_weights:
                grad_w[j] = torch.einsum("nc,nci->ci", g, filtered)
            through = filtered.sign_().mul_(g[:, :, None])  # relu' (0 or 1) times the output gradient
            if of_weights:
                grad_b[j] = through.sum(0).mul_(weight[j])
            grad_x += through.mul_(weight[j]).sum(1)
        return grad_x, *((grad_w, grad_b) if of_weights else (None, None)), None


def _runs_fused(x: torch.Tensor, *params: torch.Tensor) -> bool:
    from . import fused_dac  # only here: Triton is optional and slow to import

    return fused_dac.supported(x, *params)


def dendritic_product(x: torch.Tensor, weight: torch.Tensor, dendrite_bias: torch.Tensor,
                      block_elements: int = BLOCK_ELEMENTS) -> torch.Tensor:
    """``(B, in, L) -> (B, out, L)``: ``sum_i weight[j, i] * relu(x[:, i] + dendrite_bias[j, i])``, through the
    fused kernels where chosen and supported, else the blocked eager path."""
    if fused_mode(lambda: _runs_fused(x, weight, dendrite_bias)) is not None:
        from .fused_dac import fused_dendritic

        return fused_dendritic(x, weight, dendrite_bias)
    rows = x.transpose(1, 2).reshape(-1, x.shape[1])  # a view for a dense layer's (1, in, N) = x.t()
    out = _DendriticProduct.apply(rows, weight, dendrite_bias, block_elements)
    return out.view(x.shape[0], x.shape[2], weight.shape[0]).transpose(1, 2)


def dendritic_linear(x: torch.Tensor, weight: torch.Tensor, dendrite_bias: torch.Tensor,
                     bias: torch.Tensor | None = None, block_elements: int = BLOCK_ELEMENTS) -> torch.Tensor:
    """``(N, in) -> (N, out)``: ``sum_i weight[j, i] * relu(x[:, i] + dendrite_bias[j, i]) + bias[j]``."""
    out = dendritic_product(x.t()[None], weight, dendrite_bias, block_elements)[0].t()
    return out + bias if bias is not None else out


# An input below any dendrite bias: relu(DROPPED + b) = 0, so a dropped input adds nothing to any connection.
DROPPED = -1e30


class DACLinear(nn.Module):
    """Dense DAC layer: ``2 * in * out + out`` parameters, about twice a linear layer's arithmetic.

    ``dropout`` drops the layer's inputs the way a ReLU net's dropout after its activation does: a dropped input
    adds nothing (not ``w relu(b)``), and the kept connections are scaled by ``1 / (1 - p)`` through the weights,
    since ``relu(x + b)`` is not linear in ``x``; so each connection keeps its mean between training and
    evaluation. (``nn.Dropout`` before the layer would keep neither once the dendrite biases leave 0.)"""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.dendrite_bias = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the linear layer's initialisation; dendrite biases start at zero, so each connection starts as relu
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.dendrite_bias)
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.bias, -bound, bound)

    def dropped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs with the dropped ones at :data:`DROPPED`, and the weights scaled for the kept ones."""
        if not self.training or self.dropout == 0:
            return x, self.weight
        keep = torch.empty_like(x).bernoulli_(1 - self.dropout).bool()
        return x.masked_fill(~keep, DROPPED), self.weight / (1 - self.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = self.dropped(x)
        return dendritic_linear(x, weight, self.dendrite_bias, self.bias)


class DACConv2d(DACLinear):
    """Convolutional DAC: a dense DAC over every ``in * k * k`` patch (zero padding filtered like any input)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, dropout: float = 0.0):
        super().__init__(in_channels * kernel_size**2, out_channels, dropout)
        self.kernel_size, self.padding = kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Padding is an input like any other (its connections filter zeros), so dropout drops it too, and a
        # dropped pixel drops out of every patch that holds it.
        x, weight = self.dropped(F.pad(x, (self.padding,) * 4))
        b, _, h, w = x.shape
        patches = F.unfold(x, self.kernel_size)  # (B, in k k, L)
        out = dendritic_product(patches, weight, self.dendrite_bias) + self.bias[:, None]
        return out.view(b, self.weight.shape[0], h - self.kernel_size + 1, w - self.kernel_size + 1)


def dac_costs(in_features: int, out_features: int) -> dict[str, int]:
    """Parameters and FLOPs per input row of a dense DAC layer beside a linear layer of the same shape
    (FLOPs: add and relu per connection before its multiply-add)."""
    return {"params": 2 * in_features * out_features + out_features, "flops": 4 * in_features * out_features,
            "linear_params": in_features * out_features + out_features, "linear_flops": 2 * in_features * out_features}
