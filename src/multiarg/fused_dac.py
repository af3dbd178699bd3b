"""Fused Triton kernels for DAC's dendritic product (:mod:`multiarg.dendritic`), forward and backward:

    out[b, j, l] = sum_i w[j, i] * relu(x[b, i, l] + d[j, i])

for inputs laid out ``(B, I, L)``: a convolution's ``F.unfold`` patches as they come (its output ``(B, J, L)`` is
then the convolution's ``(B, J, H, W)`` without a permuted copy), a dense layer's input as ``(1, I, N)``.

The eager path writes every filtered input (points x outputs x inputs) to memory and reads it back; DAC has no
matrix product to hand to tensor cores, so that traffic is all it does. Here each program owns a tile of a result
in registers and walks over the reduced axis one index at a time, a rank-one update on the CUDA cores: the forward
over inputs, the input gradient over outputs, and the weight and dendrite-bias gradients over points, split
between programs (in spans of one image's locations, so that no point's index is divided) whose partial sums
torch adds (deterministic for given :class:`Tiles` and GPU model). Every product is an fp32
FMA, so the kernels match the eager path up to summation order whichever inner-net mode is chosen; tests compare
the two through Triton's CPU interpreter, and on a GPU where there is one. Under ``torch.compile`` the kernels run
as the custom operators ``multiarg::dendritic_<digest>`` and ``multiarg::dendritic_backward_<digest>``
(:func:`multiarg.fused.source_digest`).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass

import torch

from .fused import first_order_only, multiprocessors, on_device, runs_on, source_digest, triton

if triton is not None:
    import triton.language as tl

    from .fused import relu


@dataclass(frozen=True)
class Tiles:
    """Tile sizes and launch of the DAC kernels (powers of two; ``unroll`` indices of the reduced axis per loop
    step, for the loads to run ahead of the arithmetic)."""

    points: int = 64  # points per tile of the output and the input gradient
    units: int = 32  # outputs (forward), inputs (input gradient), both edges of a weight-gradient tile
    unroll: int = 4
    warps: int = 4
    programs_per_sm: int = 4  # weight-gradient programs, splitting the points between them

    def __post_init__(self):
        for name in ("points", "units", "unroll", "warps"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"Tiles.{name} must be a positive power of two, got {value}")
        if self.programs_per_sm < 1:
            raise ValueError(f"Tiles.programs_per_sm must be positive, got {self.programs_per_sm}")


TILES = Tiles()


def supported(x: torch.Tensor, *params: torch.Tensor) -> bool:
    """Whether the kernels can run on ``x`` and the layer's parameters: fp32, and where Triton runs."""
    return runs_on(x) and all(t.dtype == torch.float32 for t in (x, *params))


if triton is not None:

    @triton.jit
    def _points(tile, L, BLOCK: tl.constexpr):
        """Image, point indices and mask of one tile of points: tiles do not cross images, so a tile's points lie
        contiguously in every channel."""
        per_image = tl.cdiv(L, BLOCK)
        l = (tile % per_image) * BLOCK + tl.arange(0, BLOCK)
        return (tile // per_image).to(tl.int64), l, l < L

    @triton.jit
    def _forward_kernel(x_ptr, wt_ptr, dt_ptr, out_ptr, L, I, J, BP: tl.constexpr, BJ: tl.constexpr,
                        UNROLL: tl.constexpr):
        """One (points x outputs) tile of ``out``; ``wt`` and ``dt`` are ``(I, J)``, so a step reads rows."""
        b, l, live = _points(tl.program_id(0), L, BP)
        x_at = b * I * L + l  # 64-bit: an evaluation batch's patches can pass 2**31 elements
        outs = tl.program_id(1) * BJ + tl.arange(0, BJ)
        real = outs < J
        acc = tl.zeros((BP, BJ), tl.float32)
        for start in range(0, I, UNROLL):
            for k in tl.static_range(UNROLL):
                i = start + k
                x = tl.load(x_ptr + x_at + i * L, mask=live & (i < I), other=0.0)
                w = tl.load(wt_ptr + i * J + outs, mask=real & (i < I), other=0.0)  # zero: a padded i adds nothing
                d = tl.load(dt_ptr + i * J + outs, mask=real & (i < I), other=0.0)
                acc += relu(x[:, None] + d[None, :]) * w[None, :]
        out_at = b * J * L + l
        tl.store(out_ptr + out_at[:, None] + outs[None, :] * L, acc, mask=live[:, None] & real[None, :])

    @triton.jit
    def _input_grad_kernel(x_ptr, g_ptr, w_ptr, d_ptr, dx_ptr, L, I, J, BP: tl.constexpr, BI: tl.constexpr,
                           UNROLL: tl.constexpr):
        """One (points x inputs) tile of ``dx = sum_j g[:, j] w[j] [x + d[j] > 0]``."""
        b, l, live = _points(tl.program_id(0), L, BP)
        g_at = b * J * L + l
        ins = tl.program_id(1) * BI + tl.arange(0, BI)
        real = ins < I
        at = b * I * L + l[:, None] + ins[None, :] * L
        x = tl.load(x_ptr + at, mask=live[:, None] & real[None, :], other=0.0)
        acc = tl.zeros((BP, BI), tl.float32)
        for start in range(0, J, UNROLL):
            for k in tl.static_range(UNROLL):
                j = start + k
                g = tl.load(g_ptr + g_at + j * L, mask=live & (j < J), other=0.0)  # zero: a padded j adds nothing
                w = tl.load(w_ptr + j * I + ins, mask=real & (j < J), other=0.0)
                d = tl.load(d_ptr + j * I + ins, mask=real & (j < J), other=0.0)
                acc += tl.where(x + d[None, :] > 0, g[:, None] * w[None, :], 0.0)
        tl.store(dx_ptr + at, acc, mask=live[:, None] & real[None, :])

    @triton.jit
    def _weight_grad_kernel(x_ptr, g_ptr, w_ptr, d_ptr, part_ptr, L, I, J, spans, span, BJ: tl.constexpr,
                            BI: tl.constexpr, UNROLL: tl.constexpr):
        """One (outputs x inputs) tile of the weight and dendrite-bias gradients, summed over spans ``program_id(2)``,
        ``+ num_programs(2)``, ... (a span: ``span`` consecutive locations of one image, so a step to the next point
        is a step of the pointers, with no division), written to row ``program_id(2)`` of ``part``
        (``(programs, 2, J, I)``)."""
        outs = tl.program_id(0) * BJ + tl.arange(0, BJ)
        ins = tl.program_id(1) * BI + tl.arange(0, BI)
        real_j, real_i = outs < J, ins < I
        at = outs[:, None] * I + ins[None, :]
        real = real_j[:, None] & real_i[None, :]
        d = tl.load(d_ptr + at, mask=real, other=0.0)
        dw = tl.zeros((BJ, BI), tl.float32)
        through = tl.zeros((BJ, BI), tl.float32)  # sum of g over points whose connection passes: dd / w
        per_image = tl.cdiv(L, span)
        for unit in range(tl.program_id(2), spans, tl.num_programs(2)):
            b = (unit // per_image).to(tl.int64)
            first = (unit % per_image) * span
            last = tl.minimum(first + span, L)
            g_at = g_ptr + b * J * L + outs * L
            x_at = x_ptr + b * I * L + ins * L
            for start in range(first, last, UNROLL):
                for k in tl.static_range(UNROLL):
                    l = start + k
                    g = tl.load(g_at + l, mask=real_j & (l < last), other=0.0)  # zero: a padded l adds nothing
                    x = tl.load(x_at + l, mask=real_i & (l < last), other=0.0)
                    pre = x[None, :] + d
                    dw += g[:, None] * relu(pre)
                    through += tl.where(pre > 0, g[:, None], 0.0)
        row = part_ptr + tl.program_id(2).to(tl.int64) * 2 * J * I
        tl.store(row + at, dw, mask=real)
        tl.store(row + J * I + at, through * tl.load(w_ptr + at, mask=real, other=0.0), mask=real)


def _point_tiles(batch: int, L: int, width: int, tiles: Tiles) -> tuple[int, tuple[int, int]]:
    """Points per tile and the grid of (points x ``width``) tiles. Tiles of points stay within one image, so they
    hold fewer than ``tiles.points`` where an image has fewer locations."""
    points = min(tiles.points, max(16, triton.next_power_of_2(L)))
    return points, (batch * triton.cdiv(L, points), triton.cdiv(width, tiles.units))


def _spans(batch: int, L: int, tiles_out: int, device: torch.device, tiles: Tiles) -> tuple[int, int, int]:
    """How the weight-gradient programs of one tile of the weights share the points: ``(programs, spans, span)``.
    Enough programs for ``programs_per_sm`` per SM, each with at least ``64 * unroll`` points; the points cut into
    spans of ``span`` locations within one image, whole images where there are enough of them."""
    points = batch * L
    programs = max(1, min(tiles.programs_per_sm * multiprocessors(device) // tiles_out, points // (64 * tiles.unroll)))
    span = min(L, triton.cdiv(triton.cdiv(points, programs), tiles.unroll) * tiles.unroll)
    spans = batch * triton.cdiv(L, span)
    return min(programs, spans), spans, span


def _forward(x, weight, dendrite_bias, tiles: Tiles) -> torch.Tensor:
    batch, n_in, L = x.shape
    n_out = weight.shape[0]
    out = torch.empty(batch, n_out, L, device=x.device, dtype=torch.float32)
    if out.numel():  # an empty batch launches nothing
        points, grid = _point_tiles(batch, L, n_out, tiles)
        with on_device(x.device):
            _forward_kernel[grid](x, weight.t().contiguous(), dendrite_bias.t().contiguous(), out, L, n_in, n_out,
                                  BP=points, BJ=tiles.units, UNROLL=tiles.unroll, num_warps=tiles.warps)
    return out


def _backward(grad, x, weight, dendrite_bias, input_grad: bool, weight_grads: bool, tiles: Tiles
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient to ``x``, and those to ``weight`` and ``dendrite_bias`` stacked ``(2, J, I)``; where not asked
    for, empty (size 0)."""
    grad = grad.contiguous()
    batch, n_in, L = x.shape
    n_out = weight.shape[0]
    dx = torch.empty_like(x) if input_grad else x.new_empty(0)  # with no points, x has no elements either
    weight_grad = x.new_zeros(2, *weight.shape) if weight_grads and not batch * L else x.new_empty(0)
    if input_grad and batch * L:  # not for a network's first layer, outside attacks
        points, grid = _point_tiles(batch, L, n_in, tiles)
        with on_device(x.device):
            _input_grad_kernel[grid](x, grad, weight, dendrite_bias, dx, L, n_in, n_out, BP=points, BI=tiles.units,
                                     UNROLL=tiles.unroll, num_warps=tiles.warps)
    if weight_grads and batch * L:
        tiled = (triton.cdiv(n_out, tiles.units), triton.cdiv(n_in, tiles.units))
        programs, spans, span = _spans(batch, L, tiled[0] * tiled[1], x.device, tiles)
        partials = torch.empty(programs, 2, n_out, n_in, device=x.device, dtype=torch.float32)
        with on_device(x.device):
            _weight_grad_kernel[(*tiled, programs)](x, grad, weight, dendrite_bias, partials, L, n_in, n_out, spans,
                                                    span, BJ=tiles.units, BI=tiles.units, UNROLL=tiles.unroll,
                                                    num_warps=tiles.warps)
        weight_grad = partials.sum(0)
    return dx, weight_grad


def _grads(ctx, grad, backward, *tiles) -> tuple:
    """The gradients to ``x``, ``weight`` and ``dendrite_bias`` from ``backward`` (:func:`_backward` or its
    operator), each computed only where autograd asks for it (None otherwise)."""
    input_grad, weight_grads = ctx.needs_input_grad[0], ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
    dx, weight_grad = backward(grad, *ctx.saved_tensors, input_grad, weight_grads, *tiles)
    return dx if input_grad else None, *(weight_grad.unbind() if weight_grads else (None, None))


class _FusedDendritic(torch.autograd.Function):
    """The eager entry (cheaper to call than the custom operator below; see :mod:`multiarg.fused`)."""

    @staticmethod
    def forward(ctx, x, weight, dendrite_bias, tiles):
        ctx.save_for_backward(x, weight, dendrite_bias)
        ctx.tiles = tiles
        return _forward(x, weight, dendrite_bias, tiles)

    @staticmethod
    def backward(ctx, grad):
        first_order_only()
        return *_grads(ctx, grad, _backward, ctx.tiles), None


# The kernels as custom operators, for torch.compile (see multiarg.fused).
_DIGEST = source_digest("fused_dac", "fused")


@torch.library.custom_op(f"multiarg::dendritic_{_DIGEST}", mutates_args=())
def _dendritic_op(x: torch.Tensor, weight: torch.Tensor, dendrite_bias: torch.Tensor, points: int, units: int,
                  unroll: int, warps: int, programs_per_sm: int) -> torch.Tensor:
    return _forward(x, weight, dendrite_bias, Tiles(points, units, unroll, warps, programs_per_sm))


@_dendritic_op.register_fake
def _(x, weight, *_):
    return x.new_empty(x.shape[0], weight.shape[0], x.shape[2])


@torch.library.custom_op(f"multiarg::dendritic_backward_{_DIGEST}", mutates_args=())
def _dendritic_backward_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, dendrite_bias: torch.Tensor,
                           input_grad: bool, weight_grads: bool, points: int, units: int, unroll: int, warps: int,
                           programs_per_sm: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _backward(grad, x, weight, dendrite_bias, input_grad, weight_grads,
                     Tiles(points, units, unroll, warps, programs_per_sm))


@_dendritic_backward_op.register_fake
def _(grad, x, weight, dendrite_bias, input_grad, weight_grads, *_):
    return (torch.empty_like(x) if input_grad else x.new_empty(0),
            x.new_empty(2, *weight.shape) if weight_grads else x.new_empty(0))


def _save_for_op(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.tiles = inputs[3:]


def _op_grads(ctx, grad):
    return *_grads(ctx, grad, _dendritic_backward_op, *ctx.tiles), *(None,) * len(ctx.tiles)


_dendritic_op.register_autograd(_op_grads, setup_context=_save_for_op)


def fused_dendritic(x: torch.Tensor, weight: torch.Tensor, dendrite_bias: torch.Tensor, tiles: Tiles = TILES
                    ) -> torch.Tensor:
    """``(B, I, L) -> (B, J, L)``: ``sum_i weight[j, i] * relu(x[:, i] + dendrite_bias[j, i])`` through the fused
    kernels, differentiable in all three. Callers check :func:`supported`."""
    if x.dim() != 3 or weight.shape != dendrite_bias.shape or weight.shape[1] != x.shape[1]:
        raise ValueError(f"expected x (B, I, L) and weight, dendrite_bias (J, I); got {tuple(x.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(dendrite_bias.shape)}")
    x, weight, dendrite_bias = x.contiguous(), weight.contiguous(), dendrite_bias.contiguous()
    if torch.compiler.is_compiling():
        return _dendritic_op(x, weight, dendrite_bias, *astuple(tiles))
    return _FusedDendritic.apply(x, weight, dendrite_bias, tiles)
