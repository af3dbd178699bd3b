import warnings

import pytest
import torch

from multiarg import InnerNet, MultiArgActivation
from multiarg import chunked, dendritic
from multiarg.activations import set_kernel
from multiarg.chunked import chunked_inner_net
from multiarg.dendritic import DACConv2d, dendritic_product
from multiarg.precision import TENSORS, differentiated
from multiarg.train import frozen


@pytest.fixture
def kernel():
    """Restores the eager kernel after a test that chooses another."""
    yield set_kernel
    set_kernel("eager")


def test_no_points_give_no_output_and_zero_weight_gradients():
    inner = InnerNet(2, 16)
    x = torch.zeros(3, 0, 2, requires_grad=True)
    out = chunked_inner_net(inner, x)
    assert out.shape == (3, 0)
    out.sum().backward()
    assert all(p.grad is not None and not p.grad.any() for p in inner.parameters())


@pytest.mark.parametrize("n_args", [1, 2, 3])
@pytest.mark.parametrize("points,chunk", [(1, 7), (300, 64), (300, 300), (1000, None)])
def test_chunked_equals_the_module_in_the_output_and_every_gradient(n_args, points, chunk):
    # 300 points in chunks of 64 leave a tail of 44; the weight gradients are summed over the chunks
    torch.manual_seed(n_args)
    inner = InnerNet(n_args, 16).double()
    x, grad = torch.randn(points, n_args, dtype=torch.float64), torch.randn(points, dtype=torch.float64)
    want = differentiated(inner, inner, x, grad)
    got = differentiated(lambda v: chunked_inner_net(inner, v, chunk=chunk), inner, x, grad)
    for name in TENSORS:
        torch.testing.assert_close(got[name], want[name], rtol=1e-12, atol=1e-12, msg=name)


def test_frozen_weights_get_no_gradient_and_the_input_the_same_one(monkeypatch):
    # an attack on a frozen network (PGD, AutoAttack): the chunked and the eager DAC backward skip the weights'
    # products, and the input's gradient is bit for bit the full backward's
    torch.manual_seed(0)
    inner, x = InnerNet(2, 16), torch.randn(300, 2, requires_grad=True)
    weight, dendrite_bias = torch.randn(5, 6, requires_grad=True), torch.randn(5, 6, requires_grad=True)
    rows = torch.randn(40, 6, 3, requires_grad=True)
    backward_pass, einsum, seen = chunked.backward_pass, torch.einsum, {"of_weights": [], "einsum": 0}

    def spied_backward_pass(*args):
        seen["of_weights"].append(args[-1])
        return backward_pass(*args)

    def spied_einsum(*args):
        seen["einsum"] += 1
        return einsum(*args)

    monkeypatch.setattr(chunked, "backward_pass", spied_backward_pass)
    monkeypatch.setattr(dendritic.torch, "einsum", spied_einsum)  # the eager DAC's weight gradient

    def gradients():
        seen.update(of_weights=[], einsum=0)
        return (torch.autograd.grad(chunked_inner_net(inner, x, chunk=64).sum(), x)[0],
                torch.autograd.grad(dendritic_product(rows, weight, dendrite_bias, 60).square().sum(), rows)[0])

    full = gradients()
    assert seen == {"of_weights": [True] * 5, "einsum": 5}  # 5 chunks of 64 points; 5 blocks of 2 outputs
    with frozen(inner):
        weight.requires_grad_(False), dendrite_bias.requires_grad_(False)
        alone = gradients()
    assert seen == {"of_weights": [False] * 5, "einsum": 0}
    assert all(torch.equal(a, f) for a, f in zip(alone, full))
    assert all(p.requires_grad for p in inner.parameters())


def test_frozen_restores_every_flag_also_after_an_error():
    inner = InnerNet(2, 8)
    first = next(inner.parameters())
    first.requires_grad_(False)
    with pytest.raises(RuntimeError), frozen(inner):
        assert not any(p.requires_grad for p in inner.parameters())
        raise RuntimeError
    assert [p.requires_grad for p in inner.parameters()][:2] == [False, True] and first is next(inner.parameters())


@pytest.mark.parametrize("dim,shape", [(1, (3, 2 * 5, 4, 4)), (1, (6, 2 * 7)), (-1, (4, 3, 2 * 8))])
def test_the_chunked_kernel_gives_a_layer_the_eager_output_and_gradients(kernel, dim, shape):
    torch.manual_seed(0)
    act = MultiArgActivation(InnerNet(2, 16), dim=dim)
    z = torch.randn(shape, requires_grad=True)
    grad = torch.randn(act(z).shape)
    results = []
    for name in ("eager", "chunked"):
        kernel(name)
        out = act(z)
        results.append([out, *torch.autograd.grad(out, [z, *act.parameters()], grad)])
    for want, got in zip(*results):
        torch.testing.assert_close(got, want)


def test_autograd_keeps_only_the_chunked_inner_nets_input(kernel):
    act = MultiArgActivation(InnerNet(2, 64))
    z = torch.randn(2, 2 * 8, 16, 16, requires_grad=True)  # 4 096 points

    def saved(name: str) -> int:
        kernel(name)
        storages = {}

        def keep(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            act(z)
        return sum(storages.values())

    points, params = 4096, sum(p.numel() for p in act.parameters())
    assert saved("eager") > 2 * points * 64 * 4  # at least two of the (points, 64) hidden activations
    assert saved("chunked") <= 4 * (points * 2 + params)  # the arguments, and the weights it references


def test_the_chunked_kernel_leaves_other_depths_and_dac_to_the_eager_path(kernel):
    torch.manual_seed(0)
    deep, dac = MultiArgActivation(InnerNet(2, 16, depth=3)), DACConv2d(2, 3, 3)
    z, image = torch.randn(4, 6), torch.randn(4, 2, 5, 5)
    kernel("chunked")
    with pytest.warns(RuntimeWarning, match="using the eager kernel"):
        got = deep(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # DAC's eager path is already blocked: no warning
        dac_got = dac(image)
    kernel("eager")
    torch.testing.assert_close(got, deep(z), rtol=0, atol=0)
    torch.testing.assert_close(dac_got, dac(image), rtol=0, atol=0)
    with pytest.raises(ValueError, match="depth 2"):
        chunked_inner_net(deep.inner, z.view(-1, 2))
