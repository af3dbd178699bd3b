"""The inner net in plain PyTorch over chunks of points, its hidden activations recomputed in the backward pass.

This is the fused kernels' algorithm (:mod:`multiarg.fused`) written with PyTorch operations, so it runs on any
device: autograd keeps only the inner net's input, not its two ``(points, H)`` hidden activations, and each chunk's
hidden activations are small enough to stay in a CPU's cache while they are used. The backward pass computes the
forward of a chunk again, then its gradients (:func:`multiarg.precision.backward_pass`), and sums the weight
gradients over chunks. In ``fp32`` mode it equals the module to float rounding; in the other modes it rounds as the
fused kernels do (:mod:`multiarg.precision`), which trains with a GPU kernel's arithmetic on any device.
"""
from __future__ import annotations

import torch
from torch import nn

from .precision import TENSORS, backward_pass, hidden_pass, output_pass, require_depth2

# Points per chunk. On a CPU a chunk's hidden activations (2 x 16 384 x 64 floats, 8 MiB) stay near the cores
# (chunks of 4 096 to 65 536 timed: bench/results/inner_net-cpu.json); elsewhere chunks are large, for each
# operation to fill the device: there the purpose is memory (at most 512 MiB of hidden activations at H = 64,
# where a 1000-image batch through the paper's CNN would hold ~16 GB per hidden layer).
CHUNKS = {"cpu": 1 << 14}
DEFAULT_CHUNK = 1 << 20


def chunk_size(device: torch.device) -> int:
    """Points per chunk on ``device``: :data:`CHUNKS`, else :data:`DEFAULT_CHUNK`."""
    return CHUNKS.get(device.type, DEFAULT_CHUNK)


class _Chunked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mode, chunk, *params):
        ctx.save_for_backward(x, *params)
        ctx.mode, ctx.chunk = mode, chunk
        weights = tuple(p.to(x.dtype) for p in params)
        return torch.cat([output_pass(weights, hidden_pass(weights, piece, mode)[1]) for piece in x.split(chunk)])

    @staticmethod
    def backward(ctx, grad):
        x, *params = ctx.saved_tensors
        weights = tuple(p.to(x.dtype) for p in params)
        of_weights = any(ctx.needs_input_grad[3:])  # not where an attack differentiates a frozen network
        grad_x, sums = [], {}
        for piece, piece_grad in zip(x.split(ctx.chunk), grad.to(x.dtype).split(ctx.chunk)):
            grads = backward_pass(weights, piece, piece_grad, hidden_pass(weights, piece, ctx.mode), ctx.mode,
                                  of_weights)
            grad_x.append(grads.pop("x"))
            sums = {name: sums[name] + g for name, g in grads.items()} if sums else grads
        if not of_weights:
            return torch.cat(grad_x), None, None, *(None,) * len(params)
        return (torch.cat(grad_x), None, None,
                *(sums[name].view_as(p).to(p.dtype) for name, p in zip(TENSORS[2:], params)))


def chunked_inner_net(inner: nn.Module, x: torch.Tensor, mode: str = "fp32", chunk: int | None = None
                      ) -> torch.Tensor:
    """``inner(x)`` for ``x`` of shape ``(..., n_args)``, differentiable, evaluated ``chunk`` points at a time
    (default: :func:`chunk_size` of ``x``'s device) with the hidden activations recomputed
    in the backward pass; rounded as the fused kernels round in ``mode``. Depth-2 inner nets only."""
    require_depth2(inner)
    chunk = chunk or chunk_size(x.device)
    flat = x.reshape(-1, x.shape[-1])
    return _Chunked.apply(flat, mode, chunk, *inner.parameters()).view(x.shape[:-1])
