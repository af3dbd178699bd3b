"""The related-work activation designs: the adaptive gamma family and dendrite-activated connections."""
import pytest
import torch
from torch.nn import functional as F

from multiarg.adaptive import AdaptiveActivation, gamma
from multiarg.dendritic import DACConv2d, DACLinear, dac_costs, dendritic_linear


def test_gamma_is_softplus_at_s0_and_sigmoid_at_s1():
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    for n in (0.5, 1.0, 4.0):
        n_t = torch.tensor(n, dtype=torch.float64)
        torch.testing.assert_close(gamma(x, n_t, torch.tensor(0.0)), F.softplus(n * x) / n)
        torch.testing.assert_close(gamma(x, n_t, torch.tensor(1.0)), torch.sigmoid(n * x))
    # a large gain at s = 0 approaches ReLU
    assert (gamma(x, torch.tensor(200.0), torch.tensor(0.0)) - x.clamp_min(0)).abs().max() < 0.01


def test_gamma_stays_finite_with_finite_gradients_for_large_inputs():
    act = AdaptiveActivation(3, dim=1, gain=20.0, saturation=0.3)
    x = torch.tensor([[-1e6, 0.0, 1e6], [-1e3, 1e-3, 1e3]], requires_grad=True)
    y = act(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in act.parameters())


def test_adaptive_parameters_are_per_unit_and_constrained():
    act = AdaptiveActivation(4, dim=1, gain=2.0, saturation=0.25)
    torch.testing.assert_close(act.gain(), torch.full((4,), 2.0))
    torch.testing.assert_close(act.saturation(), torch.full((4,), 0.25))
    with torch.no_grad():
        act.raw_gain.fill_(-50.0)
        act.raw_saturation.copy_(torch.tensor([-50.0, 50.0, 0.0, 1.0]))
    assert (act.gain() > 0).all() and ((act.saturation() >= 0) & (act.saturation() <= 1)).all()
    assert act(torch.randn(2, 4, 5, 5)).shape == (2, 4, 5, 5)


def naive_dac(x, w, b, c):
    return (torch.relu(x[:, None, :] + b[None]) * w[None]).sum(-1) + c


@pytest.mark.parametrize("block_elements", [1, 37, 1 << 22])  # one output unit per block ... all at once
def test_dac_matches_the_naive_formula_forward_and_gradients(block_elements):
    torch.manual_seed(0)
    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    w, b = (torch.randn(5, 7, dtype=torch.float64, requires_grad=True) for _ in range(2))
    c = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = dendritic_linear(x, w, b, c, block_elements=block_elements)
    ref = naive_dac(x, w, b, c)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, w, b, c), g)
    ref_grads = torch.autograd.grad(ref, (x, w, b, c), g)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r)


def test_dac_conv_equals_a_dense_dac_per_patch():
    torch.manual_seed(1)
    conv = DACConv2d(3, 4, 3, padding=1).double()
    with torch.no_grad():
        conv.dendrite_bias.normal_()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    y = conv(x)
    assert y.shape == (2, 4, 5, 6)
    padded = F.pad(x, (1, 1, 1, 1))
    patch = padded[1, :, 2:5, 3:6].reshape(1, -1)  # output location (row 2, column 3) of image 1
    expected = naive_dac(patch, conv.weight, conv.dendrite_bias, conv.bias)[0]
    torch.testing.assert_close(y[1, :, 2, 3], expected)


@pytest.mark.parametrize("layer,shape", [(DACConv2d(2, 3, 3, padding=1), (0, 2, 5, 5)), (DACLinear(4, 3), (0, 4))])
def test_dac_layers_take_an_empty_batch(layer, shape):
    y = layer(torch.randn(*shape))
    assert y.shape == (0, 3, *shape[2:])
    y.sum().backward()
    assert all(p.grad is not None and not p.grad.any() for p in layer.parameters())


def test_dac_counts():
    layer = DACLinear(10, 3)
    costs = dac_costs(10, 3)
    assert sum(p.numel() for p in layer.parameters()) == costs["params"] == 63
    assert costs["flops"] == 2 * costs["linear_flops"]


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 28, 28)), ("cnn", (3, 32, 32))])
@pytest.mark.parametrize("activation", ["gamma", "dac"])
def test_outer_nets_with_the_related_designs_train_and_match(arch, shape, activation):
    from multiarg import ModelConfig, OuterNet, count_parameters, exact_param_count, matched_widths

    ref = ModelConfig(arch, "arg2", shape, 10, (6, 8), inner_hidden=8, pool_after=(0, 1))
    widths, _ = matched_widths(ref, activation)
    cfg = ref.replace(activation=activation, widths=widths)
    net = OuterNet(cfg)
    assert count_parameters(net) == exact_param_count(cfg)
    # one unit is a large step at these tiny widths; tests/test_params.py checks < 1% at paper widths
    assert abs(exact_param_count(cfg) - exact_param_count(ref)) / exact_param_count(ref) < 0.1
    x = torch.rand(4, *shape)
    loss = F.cross_entropy(net(x), torch.arange(4))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("layer,shape", [(DACLinear(6, 3, dropout=0.5), (1, 6)),
                                         (DACConv2d(2, 2, 3, padding=1, dropout=0.5), (1, 2, 4, 4))])
def test_dac_dropout_keeps_each_connections_mean_where_dropout_before_the_layer_does_not(layer, shape):
    torch.manual_seed(0)
    layer = layer.double()
    with torch.no_grad():
        layer.dendrite_bias.uniform_(-1, 1)  # away from 0, where relu(x + b) is no longer linear in x
    x = torch.randn(shape, dtype=torch.float64)
    draws = x.expand(40_000, *shape[1:])  # each row draws its own mask
    with torch.no_grad():
        want = layer.eval()(x)[0]
        got = layer.train()(draws)
        torch.testing.assert_close(got.mean(0), want, rtol=0, atol=float(4 * got.std(0).max() / 200))
        layer.dropout = 0.0
        before = layer(torch.nn.functional.dropout(draws, 0.5)).mean(0)
    assert (before - want).abs().max() > 0.02


def test_a_dropped_dac_input_adds_nothing():
    torch.manual_seed(0)
    layer = DACLinear(8, 3, dropout=0.5).double().train()
    with torch.no_grad():
        layer.dendrite_bias.uniform_(-1, 1)
    x = torch.randn(1, 8, dtype=torch.float64)
    torch.manual_seed(1)
    kept = layer.dropped(x)[0][0] != -1e30
    torch.manual_seed(1)
    out = layer(x)[0]
    assert 0 < kept.sum() < 8
    expected = (2 * layer.weight[:, kept] * F.relu(x[0, kept] + layer.dendrite_bias[:, kept])).sum(1) + layer.bias
    torch.testing.assert_close(out, expected)


def test_dac_nets_drop_inside_their_layers_and_keep_every_nets_layer_indices():
    from multiarg.models import ModelConfig, OuterNet

    nets = {a: OuterNet(ModelConfig("cnn", a, (1, 8, 8), 10, (2, 3, 3), pool_after=(0,))) for a in ("relu", "dac")}
    dac_layers = [m for m in nets["dac"].body if isinstance(m, DACLinear)]
    assert [m.dropout for m in dac_layers] == [0.0, 0.5, 0.5]
    assert sum(isinstance(m, torch.nn.Dropout) for m in nets["dac"].body) == 1  # only before the read-out
    layers = {a: {k.rsplit(".", 1)[0] for k in net.state_dict()} for a, net in nets.items()}
    assert layers["relu"] <= layers["dac"]
