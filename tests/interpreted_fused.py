"""The fused inner-net kernels against the PyTorch reference, run on the CPU by Triton's interpreter.

Collected only through tests/test_fused.py, which runs this file in a fresh process with TRITON_INTERPRET=1:
the interpreter must be on before Triton is first imported, and the rest of the suite must not run under it.
"""
import os

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("run through tests/test_fused.py (needs TRITON_INTERPRET=1 from the start)", allow_module_level=True)
pytest.importorskip("triton")

from multiarg.activations import InnerNet  # noqa: E402
from multiarg.fused import fused_inner, supported  # noqa: E402


def _both(inner, x, mode="fp32"):
    """Output and gradients (input and every parameter) of the reference and of the fused kernels."""
    ref = inner(x)
    grad = torch.randn_like(ref)
    params = list(inner.parameters())
    ref_grads = torch.autograd.grad(ref, [x, *params], grad)
    out = fused_inner(inner, x, mode)
    return (ref, *ref_grads), (out, *torch.autograd.grad(out, [x, *params], grad))


@pytest.mark.parametrize("n_args", [1, 2, 3])
@pytest.mark.parametrize("points", [1, 63, 300])  # under one block, one short of a block, several per program
@pytest.mark.parametrize("hidden", [16, 32])
def test_fp32_forward_and_every_gradient_match_the_reference(n_args, points, hidden):
    torch.manual_seed(points + hidden)
    inner = InnerNet(n_args, hidden)
    x = (2 * torch.randn(points, n_args)).requires_grad_()
    assert supported(inner, x)
    for ref, got in zip(*_both(inner, x)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_leading_dimensions_are_kept():
    torch.manual_seed(0)
    inner = InnerNet(2, 16)
    x = torch.randn(3, 5, 7, 2, requires_grad=True)
    (ref, ref_dx, *_), (got, dx, *_) = _both(inner, x)
    assert got.shape == (3, 5, 7) and dx.shape == x.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode,forward,gradients", [("tf32", 1e-5, 1e-5), ("bf16", 2e-2, 1e-1)])
def test_reduced_precision_modes_stay_within_their_bounds(mode, forward, gradients):
    # The interpreter computes tf32 products exactly (as fp32). bf16 operands keep 8 significant bits; in the
    # gradients, sums with cancellation and ReLU masks flipped near zero make the error grow to a few percent.
    torch.manual_seed(1)
    inner = InnerNet(2, 32)
    x = torch.randn(200, 2, requires_grad=True)
    for i, (ref, got) in enumerate(zip(*_both(inner, x, mode))):
        error = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item()
        assert error < (forward if i == 0 else gradients)
        assert error < 1e-5 or mode == "bf16"


def test_unsupported_inner_nets_are_refused():
    x = torch.randn(4, 2)
    assert not supported(InnerNet(2, 24), x)  # not a power of two
    assert not supported(InnerNet(2, 32, depth=3), x)
    with pytest.raises(ValueError, match="mode"):
        fused_inner(InnerNet(2, 16), x, "fp16")
