"""Fused Triton kernels for the shared inner net ``n -> H -> H -> 1`` (ReLU), forward and backward.

The inner net is applied independently to millions of argument tuples; in eager PyTorch most of its time
goes to writing and re-reading the two ``(points, H)`` hidden activations. Here one program keeps the
weights (``H*H + 3H + n*H + 1`` floats) on chip, walks over blocks of points, and never writes a hidden
activation to global memory: the backward pass recomputes them. The kernels read a layer's pre-activations
where they lie (:func:`fused_activation`: argument ``k`` of unit ``c`` is channel ``k*C + c``), so no
transposed copy of the input, output or input gradient is made. Weight gradients are summed in each
program's registers over its blocks and written once per program; torch adds the per-program partials,
so the reduction is deterministic for a given :class:`Launch` and GPU model (the programs are a few per SM, so
another model sums in another order). Under ``torch.compile`` the kernels run as the custom operators
``multiarg::inner_net_<digest>`` and ``multiarg::inner_net_backward_<digest>`` (:func:`source_digest`), so a
network compiles whole.

Precision modes (:data:`MODES`): ``fp32`` (IEEE products), ``tf32`` (the H x H products on TF32 tensor
cores, which read 10 of an operand's 23 mantissa bits), ``tf32x3`` (each product made of three TF32 products, of
the operands' rounded parts and remainders: about fp32's accuracy on tensor cores) and ``bf16`` (the operands
rounded to bfloat16); fp32 accumulation and everything else fp32. :mod:`multiarg.precision` emulates each mode in
PyTorch. Tests compare the kernels with the plain PyTorch :class:`~multiarg.activations.InnerNet` (fp32, to 1e-5)
and each mode with its emulation (to 1e-4), on a GPU or through Triton's CPU interpreter (``TRITON_INTERPRET=1``),
where the reduced modes round their operands as a GPU does and multiply in fp32. Against float64, tf32 and bf16
keep the output within 3e-3 and 8e-3 and the gradients within 15% and 30% (relative norms, measured by
``bench/precision.py``; fp32 and tf32x3: 1e-6 and 1e-3; :data:`multiarg.precision.ERROR_BOUNDS`): rounding
switches a few ReLUs of the second hidden layer on or off, and each passes a whole term of a gradient or none of it.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
from dataclasses import astuple, dataclass
from pathlib import Path

import torch

from .precision import MODES

try:
    import triton
    import triton.language as tl
except ImportError:  # the reference path needs no Triton
    triton = None

# Whether Triton runs kernels in its CPU interpreter: decided when a kernel is defined (TRITON_INTERPRET=1 then), so
# here, once; a constant is also what torch.compile can trace, where reading Triton's knobs is not.
_knobs = getattr(triton, "knobs", None)  # Triton >= 3.4; older releases read the variable directly
_INTERPRETED = triton is not None and (bool(_knobs.runtime.interpret) if _knobs is not None
                                       else os.environ.get("TRITON_INTERPRET") == "1")


@dataclass(frozen=True)
class Launch:
    """How the kernels are launched. ``python bench/inner_net.py --sweep`` times the alternatives on a GPU,
    ``python bench/kernel_resources.py`` gives their registers and spills without one."""

    block: int = 64  # points per block: a power of two >= 16 (tl.dot's smallest tile)
    warps: int = 4
    programs_per_sm: int = 8  # persistent grid: each program walks over several blocks

    def __post_init__(self):
        for name in ("block", "warps"):
            value = getattr(self, name)
            if value < (16 if name == "block" else 1) or value & (value - 1):
                raise ValueError(f"Launch.{name} must be a power of two (block >= 16), got {value}")
        if self.programs_per_sm < 1:
            raise ValueError(f"Launch.programs_per_sm must be positive, got {self.programs_per_sm}")


# The default launch per mode. fp32's IEEE products run on the CUDA cores, as long unrolled loops: compiled for
# sm_90 by Triton 3.8 at 64 points and 4 warps its backward kernel spills about 13 KB a thread, at 32 points and
# 8 warps nothing (by Triton 3.6, 3-4 KB; bench/kernel_resources.py). tf32 and bf16 spill little either way;
# bench/inner_net.py --sweep chooses. tf32x3's backward kernel spills at every launch; at 32 x 8, 80-88 B a thread by
# Triton 3.6 (the least), 0.75-2.4 KB by 3.8.
LAUNCHES = {"fp32": Launch(block=32, warps=8), "tf32": Launch(), "tf32x3": Launch(block=32, warps=8),
            "bf16": Launch()}


def supported(inner, x: torch.Tensor) -> bool:
    """Whether the fused kernels can run this inner net on ``x``: depth 2, H a power of two from 16 to 128 (at 256 a
    program's weights and tiles need more shared memory than an SM has: 270 to 340 KB on sm_90, of 228), fp32 (the
    kernels compute in fp32 whatever they are given), Triton present, and a CUDA tensor (or Triton's interpreter
    on the CPU)."""
    hidden = inner.hidden
    fp32 = x.dtype == torch.float32 and all(p.dtype == torch.float32 for p in inner.parameters())
    return runs_on(x) and fp32 and inner.depth == 2 and 16 <= hidden <= 128 and hidden & (hidden - 1) == 0


def first_order_only() -> None:
    """The kernels' gradients carry no graph: refuse a backward that would build one (``create_graph=True``, as a
    gradient penalty asks), which would otherwise take them as constants and drop the second-order terms."""
    if torch.is_grad_enabled():
        raise RuntimeError("the fused kernels have no double backward (create_graph=True); use inner_kernel eager "
                           "or chunked")


def on_device(device: torch.device):
    """Triton launches on the current CUDA device, not on its tensors': make it theirs (``device: cuda:1``)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def runs_on(x: torch.Tensor) -> bool:
    """Whether Triton kernels can run on ``x``'s device: Triton present, and a CUDA tensor or the interpreter."""
    return triton is not None and (x.is_cuda or _INTERPRETED)


if triton is not None:

    @triton.jit
    def relu(a):
        """``max(a, 0)`` keeping NaN, as PyTorch's ReLU does: ``tl.maximum``'s default returns the number, so a
        diverged network would give finite outputs and its loss could not show the divergence."""
        return tl.maximum(a, 0.0, propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def _dot(a, b, MODE: tl.constexpr, EMULATE: tl.constexpr):
        """``a @ b`` with fp32 accumulation, operands in the precision of ``MODE`` (one of :data:`MODES`)."""
        # Under the interpreter the products are made in fp32 from operands rounded as a GPU rounds them: its tl.dot
        # computes tf32 exactly and returns garbage on bfloat16 (Triton 3.8), and its conversion to bfloat16
        # truncates. A product of two bf16 or two tf32 values is exact in fp32, so the result is a GPU's.
        if MODE == "bf16" and EMULATE:
            c = tl.dot(_bf16(a), _bf16(b), input_precision="ieee")
        elif MODE == "bf16":
            c = tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), out_dtype=tl.float32)
        elif MODE == "tf32" and EMULATE:
            c = tl.dot(_tf32(a), _tf32(b), input_precision="ieee")
        elif MODE == "tf32x3" and EMULATE:
            # Triton's three TF32 products: each operand rounded to TF32 (cvt.rna) plus its remainder
            a_big, b_big = _tf32_nearest(a), _tf32_nearest(b)
            c = tl.dot(a_big, _tf32(b - b_big), input_precision="ieee")
            c = tl.dot(_tf32(a - a_big), b_big, c, input_precision="ieee")
            c = tl.dot(a_big, b_big, c, input_precision="ieee")
        elif MODE == "fp32":
            c = tl.dot(a, b, input_precision="ieee")
        else:
            c = tl.dot(a, b, input_precision=MODE)
        return c

    @triton.jit
    def _tf32(a):
        """``a`` as a TF32 tensor core reads it: Triton passes the fp32 bits (the PTX has no rounding instruction;
        ``bench/kernel_resources.py`` lists its conversions), of which the 13 low mantissa bits are dropped."""
        return (a.to(tl.int32, bitcast=True) & -(1 << 13)).to(tl.float32, bitcast=True)

    @triton.jit
    def _tf32_nearest(a):
        """``a`` rounded to TF32 to nearest, ties away from zero (``cvt.rna.tf32.f32``)."""
        return ((a.to(tl.int32, bitcast=True) + (1 << 12)) & -(1 << 13)).to(tl.float32, bitcast=True)

    @triton.jit
    def _bf16(a):
        """``a`` rounded to bfloat16 to nearest even, as a GPU's conversion (``cvt.rn.bf16.f32``) rounds it."""
        bits = a.to(tl.int32, bitcast=True)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) & -(1 << 16)).to(tl.float32, bitcast=True)

    @triton.jit
    def _points(block, N, M, N_ARGS: tl.constexpr, BLOCK: tl.constexpr):
        """Point indices of one block, their mask, and where their first argument lies: the input is
        ``(N // M, N_ARGS, M)``, so argument ``k`` of point ``p`` is at ``(p // M) * N_ARGS * M + k * M + p % M``.
        64-bit, because an evaluation batch of a CNN can pass 2**31 elements (points themselves stay below)."""
        rows = block * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        return rows, rows < N, (rows // M) * (N_ARGS * M) + rows % M

    @triton.jit
    def _hidden(x_ptr, first, M, mask, w1_ptr, b1_ptr, w2t, b2, cols, N_ARGS: tl.constexpr, H: tl.constexpr,
                BLOCK: tl.constexpr, MODE: tl.constexpr, EMULATE: tl.constexpr):
        """Pre-activations ``a1`` and ``a2`` of both hidden layers for one block of points."""
        a1 = tl.zeros((BLOCK, H), tl.float32) + tl.load(b1_ptr + cols)[None, :]
        for k in tl.static_range(N_ARGS):
            xk = tl.load(x_ptr + first + k * M, mask=mask, other=0.0)
            a1 += xk[:, None] * tl.load(w1_ptr + cols * N_ARGS + k)[None, :]
        a2 = _dot(relu(a1), w2t, MODE, EMULATE)
        return a1, a2 + b2[None, :]

    @triton.jit
    def _forward_kernel(x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, out_ptr, N, M, n_blocks,
                        N_ARGS: tl.constexpr, H: tl.constexpr, BLOCK: tl.constexpr, MODE: tl.constexpr,
                        EMULATE: tl.constexpr):
        cols = tl.arange(0, H)
        w2t = tl.load(w2_ptr + cols[None, :] * H + cols[:, None])  # [i, j] = W2[j, i]
        b2, w3, b3 = tl.load(b2_ptr + cols), tl.load(w3_ptr + cols), tl.load(b3_ptr)
        for block in range(tl.program_id(0), n_blocks, tl.num_programs(0)):
            rows, mask, first = _points(block, N, M, N_ARGS, BLOCK)
            _, a2 = _hidden(x_ptr, first, M, mask, w1_ptr, b1_ptr, w2t, b2, cols, N_ARGS, H, BLOCK, MODE,
                            EMULATE)
            out = tl.sum(relu(a2) * w3[None, :], 1) + b3
            tl.store(out_ptr + rows, out, mask=mask)

    @triton.jit
    def _backward_kernel(x_ptr, g_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, dx_ptr, part_ptr, part_stride, N, M,
                         n_blocks, N_ARGS: tl.constexpr, ARGS_P2: tl.constexpr, H: tl.constexpr,
                         BLOCK: tl.constexpr, MODE: tl.constexpr, EMULATE: tl.constexpr, WEIGHTS: tl.constexpr):
        """Writes dx and, with ``WEIGHTS``, this program's partial weight gradients as one row of ``part_ptr``, laid
        out as :func:`_gradient_shapes` orders them. Without, one of its three products and every accumulator
        go (an attack's gradient to the input: PGD, AutoAttack)."""
        pid = tl.program_id(0)
        cols, args = tl.arange(0, H), tl.arange(0, ARGS_P2)
        w2 = tl.load(w2_ptr + cols[:, None] * H + cols[None, :])  # [j, i] = W2[j, i]
        w2t = tl.trans(w2)
        b2, w3 = tl.load(b2_ptr + cols), tl.load(w3_ptr + cols)
        dw2 = tl.zeros((H, H), tl.float32)
        dw1 = tl.zeros((H, ARGS_P2), tl.float32)  # column k holds dW1[:, k]; padding columns stay zero
        db1, db2, dw3 = tl.zeros((H,), tl.float32), tl.zeros((H,), tl.float32), tl.zeros((H,), tl.float32)
        db3 = tl.zeros((1,), tl.float32)
        for block in range(pid, n_blocks, tl.num_programs(0)):
            rows, mask, first = _points(block, N, M, N_ARGS, BLOCK)
            a1, a2 = _hidden(x_ptr, first, M, mask, w1_ptr, b1_ptr, w2t, b2, cols, N_ARGS, H, BLOCK, MODE,
                             EMULATE)
            # the weights' terms in the order the kernel had before it could leave them out: that order compiles
            # without spilling at the fp32 launch (tests/test_bench.py)
            g = tl.load(g_ptr + rows, mask=mask, other=0.0)  # padded rows carry no gradient
            if WEIGHTS:
                dw3 += tl.sum(g[:, None] * relu(a2), 0)
                db3 += tl.sum(g, 0)
            dh2 = tl.where(a2 > 0, g[:, None] * w3[None, :], 0.0)
            if WEIGHTS:
                db2 += tl.sum(dh2, 0)
                dw2 += _dot(tl.trans(dh2), relu(a1), MODE, EMULATE)
            dh1 = tl.where(a1 > 0, _dot(dh2, w2, MODE, EMULATE), 0.0)
            if WEIGHTS:
                db1 += tl.sum(dh1, 0)
            for k in tl.static_range(N_ARGS):
                if WEIGHTS:
                    xk = tl.load(x_ptr + first + k * M, mask=mask, other=0.0)
                w1k = tl.load(w1_ptr + cols * N_ARGS + k)
                tl.store(dx_ptr + first + k * M, tl.sum(dh1 * w1k[None, :], 1), mask=mask)
                if WEIGHTS:
                    dw1 += tl.where(args[None, :] == k, tl.sum(dh1 * xk[:, None], 0)[:, None], 0.0)
        if WEIGHTS:
            row = part_ptr + pid.to(tl.int64) * part_stride
            tl.store(row + cols[:, None] * N_ARGS + args[None, :], dw1, mask=(args < N_ARGS)[None, :])
            row += H * N_ARGS
            tl.store(row + cols, db1)
            row += H
            tl.store(row + cols[:, None] * H + cols[None, :], dw2)
            row += H * H
            tl.store(row + cols, db2)
            row += H
            tl.store(row + cols, dw3)
            row += H
            tl.store(row + tl.arange(0, 1), db3)


def _gradient_shapes(n_args: int, hidden: int) -> tuple:
    """Shapes of the weight gradients in the order of a backward program's row: dW1, db1, dW2, db2, dW3, db3."""
    return (hidden, n_args), (hidden,), (hidden, hidden), (hidden,), (1, hidden), (1,)


def multiprocessors(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device; 1 for Triton's interpreter."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1


def _programs(n_blocks: int, device: torch.device, launch: Launch) -> int:
    """Persistent grid: a few programs per SM, at most one per block."""
    return max(1, min(n_blocks, launch.programs_per_sm * multiprocessors(device)))


def _forward(x, w1, b1, w2, b2, w3, b3, mode: str, launch: Launch) -> torch.Tensor:
    """The inner net on ``x`` of shape ``(B, n_args, M)`` (contiguous fp32), giving ``(B, M)``."""
    _, n_args, group = x.shape
    n_blocks = triton.cdiv(x.numel() // n_args, launch.block)
    out = torch.empty(x.shape[0], group, device=x.device, dtype=torch.float32)
    with on_device(x.device):
        _forward_kernel[(_programs(n_blocks, x.device, launch),)](
            x, w1, b1, w2, b2, w3, b3, out, x.numel() // n_args, group, n_blocks, **_flags(x, w1, mode, launch))
    return out


def _backward(grad, x, w1, b1, w2, b2, w3, mode: str, launch: Launch, weights: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient to ``x``, and the weight gradients flat in the order of :func:`_gradient_shapes` (empty unless
    ``weights``)."""
    n_args = x.shape[1]
    n_blocks = triton.cdiv(x.numel() // n_args, launch.block)
    programs = _programs(n_blocks, x.device, launch)
    dx = torch.empty_like(x)
    # one row of partial sums per program and a single reduction: a step's launch count stays small
    size = _gradient_size(n_args, w1.shape[0]) if weights else 0
    partials = torch.empty(programs, size, device=x.device, dtype=torch.float32)
    with on_device(x.device):
        _backward_kernel[(programs,)](x, grad.contiguous().float(), w1, b1, w2, b2, w3, dx, partials,
                                      partials.stride(0), x.numel() // n_args, x.shape[2], n_blocks,
                                      ARGS_P2=triton.next_power_of_2(n_args), WEIGHTS=weights,
                                      **_flags(x, w1, mode, launch))
    return dx, partials.sum(0)


def _flags(x, w1, mode: str, launch: Launch) -> dict:
    return dict(N_ARGS=x.shape[1], H=w1.shape[0], BLOCK=launch.block, MODE=mode, EMULATE=_INTERPRETED,
                num_warps=launch.warps)


def _gradient_size(n_args: int, hidden: int) -> int:
    return sum(math.prod(s) for s in _gradient_shapes(n_args, hidden))


def _grads(ctx, grad, backward, *launch) -> tuple[torch.Tensor, ...]:
    """The gradients to ``x`` and each weight from ``backward`` (:func:`_backward` or its operator) on what the
    forward saved; the weights' only where one of them needs a gradient (``needs_input_grad``: not where an attack
    differentiates a frozen network)."""
    x, w1 = ctx.saved_tensors[:2]
    weights = any(ctx.needs_input_grad[1:7])
    dx, flat = backward(grad, *ctx.saved_tensors, *launch, weights)
    if not weights:
        return dx, *(None,) * 6
    shapes = _gradient_shapes(x.shape[1], w1.shape[0])
    return dx, *(g.view(s) for g, s in zip(flat.split([math.prod(s) for s in shapes]), shapes))


class _FusedInner(torch.autograd.Function):
    """The eager entry: dispatching the custom operator below, which ``torch.compile`` needs, costs several times
    the host time of an autograd.Function a call."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, w3, b3, mode, launch):
        ctx.save_for_backward(x, w1, b1, w2, b2, w3)
        ctx.mode, ctx.launch = mode, launch
        return _forward(x, w1, b1, w2, b2, w3, b3, mode, launch)

    @staticmethod
    def backward(ctx, grad):
        first_order_only()
        return *_grads(ctx, grad, _backward, ctx.mode, ctx.launch), None, None


def source_digest(*modules: str) -> str:
    """A digest of the source of this package's ``modules``, for the names of the custom operators they implement.
    AOTAutograd's on-disk cache keys a compiled graph by its forward graph and takes a custom operator as fixed, so
    a changed backward operator was served a backward graph compiled against the old one (CI met a stale call
    missing an argument added since); a name that changes with the code keeps such graphs apart."""
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / f"{m}.py").read_bytes() for m in modules)).hexdigest()[:12]


# The same kernels as custom operators, opaque to torch.compile: Dynamo cannot trace a Triton launch under the
# interpreter, nor the host-side launch arithmetic on a GPU without breaking the graph. With them a whole fused
# step compiles to one graph, and ``mode="reduce-overhead"`` can replay it as a CUDA graph.
_DIGEST = source_digest("fused", "precision")


@torch.library.custom_op(f"multiarg::inner_net_{_DIGEST}", mutates_args=())
def _inner_op(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
              w3: torch.Tensor, b3: torch.Tensor, mode: str, block: int, warps: int, programs_per_sm: int
              ) -> torch.Tensor:
    return _forward(x, w1, b1, w2, b2, w3, b3, mode, Launch(block, warps, programs_per_sm))


@_inner_op.register_fake
def _(x, *_):
    return x.new_empty(x.shape[0], x.shape[2])


@torch.library.custom_op(f"multiarg::inner_net_backward_{_DIGEST}", mutates_args=())
def _inner_backward_op(grad: torch.Tensor, x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                       b2: torch.Tensor, w3: torch.Tensor, mode: str, block: int, warps: int, programs_per_sm: int,
                       weights: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _backward(grad, x, w1, b1, w2, b2, w3, mode, Launch(block, warps, programs_per_sm), weights)


@_inner_backward_op.register_fake
def _(grad, x, w1, *args):
    return torch.empty_like(x), x.new_empty(_gradient_size(x.shape[1], w1.shape[0]) if args[-1] else 0)


def _save_for_op(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:6])
    ctx.launch = inputs[7:]


def _op_grads(ctx, grad):
    return *_grads(ctx, grad, _inner_backward_op, *ctx.launch), *(None,) * len(ctx.launch)


_inner_op.register_autograd(_op_grads, setup_context=_save_for_op)


def fused_activation(inner, z: torch.Tensor, dim: int = 1, mode: str = "fp32", launch: Launch | None = None
                     ) -> torch.Tensor:
    """:class:`~multiarg.activations.MultiArgActivation`'s forward through the fused kernels: ``z`` with
    ``n_args * C`` features along ``dim`` gives ``C`` features there, unit ``c`` receiving features
    ``c, C + c, ...``. Differentiable in ``z`` and every inner-net parameter. ``launch`` defaults to the mode's
    in :data:`LAUNCHES`. Callers check :func:`supported`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    dim, n_args = dim % z.dim(), inner.n_args
    if z.shape[dim] % n_args:
        raise ValueError(f"{z.shape[dim]} features cannot be split into {n_args} arguments")
    units = z.shape[dim] // n_args
    x = z.reshape(math.prod(z.shape[:dim]), n_args, units * math.prod(z.shape[dim + 1:])).contiguous().float()
    first, second, last = (m for m in inner.net if isinstance(m, torch.nn.Linear))
    launch = launch or LAUNCHES[mode]
    weights = (first.weight.contiguous(), first.bias, second.weight.contiguous(), second.bias,
               last.weight.contiguous(), last.bias)
    if torch.compiler.is_compiling():
        out = _inner_op(x, *weights, mode, *astuple(launch))
    else:
        out = _FusedInner.apply(x, *weights, mode, launch)
    return out.view(*z.shape[:dim], units, *z.shape[dim + 1:]).to(z.dtype)


def fused_inner(inner, x: torch.Tensor, mode: str = "fp32", launch: Launch | None = None) -> torch.Tensor:
    """``inner(x)`` for ``x`` of shape ``(..., n_args)`` through the fused kernels (one unit per tuple)."""
    return fused_activation(inner, x, -1, mode, launch).squeeze(-1)
