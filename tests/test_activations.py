import hashlib
from pathlib import Path

import pytest
import torch

from multiarg import ActivationSpec, InnerNet, ModelConfig, MultiArgActivation, OuterNet, chunked, count_parameters
from multiarg.activations import fell_back, get_kernel, set_kernel
from multiarg.dendritic import DACConv2d
from multiarg.fused import Launch
from multiarg.fused_dac import Tiles


def test_parse_names():
    assert ActivationSpec.parse("relu") == ActivationSpec("relu", 1, False, None, "relu")
    assert ActivationSpec.parse("arg2") == ActivationSpec("arg2", 2, True, "pretrained", "arg2")
    assert ActivationSpec.parse("arg3-xavier").init == "xavier"
    assert ActivationSpec.parse("arg3-xavier").design == "arg3-xavier"
    assert ActivationSpec.parse("dac-flops") == ActivationSpec("dac-flops", 1, False, None, "dac", "flops")
    assert ActivationSpec.parse("arg1-flops") == ActivationSpec("arg1-flops", 1, True, "pretrained", "arg1", "flops")
    assert ActivationSpec.parse("relu-width") == ActivationSpec("relu-width", 1, False, None, "relu", "width")
    for name in ("gelu", "arg2-xavier-flops", "relu-xavier", "relu-flops-flops", "arg2-xavier-width",
                 "relu-width-flops"):
        with pytest.raises(ValueError, match="unknown activation"):
            ActivationSpec.parse(name)


def test_unit_c_receives_slices_c_and_C_plus_c():
    torch.manual_seed(0)
    act = MultiArgActivation(InnerNet(2), dim=1)
    z = torch.randn(4, 6)  # C = 3 units, 2 arguments each
    expected = torch.stack([act.inner(torch.stack([z[:, c], z[:, 3 + c]], -1)) for c in range(3)], 1)
    torch.testing.assert_close(act(z), expected)


def test_conv_form_is_a_per_location_inner_net():
    torch.manual_seed(0)
    act = MultiArgActivation(InnerNet(3), dim=1)
    z = torch.randn(2, 3 * 5, 4, 4)
    out = act(z)
    assert out.shape == (2, 5, 4, 4)
    b, c, i, j = 1, 4, 2, 3
    point = torch.stack([z[b, c, i, j], z[b, 5 + c, i, j], z[b, 10 + c, i, j]])
    torch.testing.assert_close(out[b, c, i, j], act.inner(point))
    with pytest.raises(ValueError, match="cannot be split"):
        act(torch.randn(2, 7, 4, 4))


def test_evaluation_without_autograd_runs_in_pieces_with_the_same_result(monkeypatch):
    torch.manual_seed(0)
    act = MultiArgActivation(InnerNet(2), dim=1)
    z = torch.randn(3, 2 * 5, 4, 4)  # 240 points
    whole = act(z)
    monkeypatch.setitem(chunked.CHUNKS, "cpu", 7)  # 34 full pieces and a tail of 2
    calls = []
    act.inner.net.register_forward_hook(lambda module, inputs, out: calls.append(inputs[0].numel() // 2))
    with torch.no_grad():
        pieces = act(z)
    assert calls == [7] * 34 + [2]
    torch.testing.assert_close(pieces, whole.detach(), rtol=1e-6, atol=1e-7)
    act(z)  # with autograd the whole layer runs at once: the graph keeps every hidden activation anyway
    assert calls[-1] == 240


@pytest.mark.parametrize("arch,shape,widths", [("mlp", (1, 28, 28), (16, 12, 8)), ("cnn", (3, 32, 32), (4, 6, 6, 6))])
def test_one_inner_net_shared_by_every_layer_and_unit(arch, shape, widths):
    torch.manual_seed(0)
    model = OuterNet(ModelConfig(arch, "arg2", shape, 10, widths))
    acts = [m for m in model.modules() if isinstance(m, MultiArgActivation)]
    assert len(acts) == len(widths)
    assert all(a.inner is model.inner for a in acts)
    inner_ids = {id(p) for p in model.inner.parameters()}
    assert len({id(p) for p in model.parameters()} & inner_ids) == len(inner_ids)
    # every layer's use of the inner net contributes to its gradient
    grads = []
    for layer in range(len(acts)):
        model.zero_grad()
        captured = {}
        handle = acts[layer].register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
        model(torch.rand(2, *shape))
        handle.remove()
        captured["out"].sum().backward()
        grads.append(model.inner.net[0].weight.grad.clone())
    assert all(g.abs().sum() > 0 for g in grads)
    assert count_parameters(model) == sum(p.numel() for n, p in model.named_parameters())


def test_xavier_init_has_zero_biases_and_glorot_bounds():
    inner = InnerNet(2).xavier_(torch.Generator().manual_seed(0))
    for layer in inner.net:
        if isinstance(layer, torch.nn.Linear):
            fan_out, fan_in = layer.weight.shape
            assert layer.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5
            assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("layer", ["inner net", "dac"])
def test_kernel_choice_is_validated_and_falls_back_to_eager_where_fused_cannot_run(layer):
    pytest.importorskip("triton")
    with pytest.raises(ValueError, match="inner-net kernel"):
        set_kernel("fused-fp16")
    act = MultiArgActivation(InnerNet(2, 16)) if layer == "inner net" else DACConv2d(2, 3, 3)
    z = torch.randn(4, 6) if layer == "inner net" else torch.randn(4, 2, 5, 5)
    previous = set_kernel("fused-bf16")
    try:
        assert previous == "eager" and get_kernel() == "fused-bf16" and not fell_back()
        with pytest.warns(RuntimeWarning, match="using the eager kernel"):
            got = act(z)  # a CPU tensor without Triton's interpreter
        assert fell_back()  # what the model's record says, though the warning shows once per process
    finally:
        set_kernel(previous)
    assert not fell_back()
    torch.testing.assert_close(got, act(z), rtol=0, atol=0)


def test_fused_launch_settings_are_validated():
    with pytest.raises(ValueError, match="power of two"):
        Launch(block=24)
    with pytest.raises(ValueError, match="power of two"):
        Launch(block=8)
    with pytest.raises(ValueError, match="positive"):
        Launch(programs_per_sm=0)
    assert Launch(block=128, warps=8).block == 128
    for bad in ({"points": 24}, {"units": 0}, {"unroll": 3}):
        with pytest.raises(ValueError, match="positive power of two"):
            Tiles(**bad)
    with pytest.raises(ValueError, match="positive"):
        Tiles(programs_per_sm=0)
    assert Tiles(points=128, programs_per_sm=3).points == 128  # programs per SM need not be a power of two


def test_custom_operator_names_change_with_their_source():
    # AOTAutograd's disk cache keys a compiled step by its forward graph alone: only a new name keeps a step compiled
    # against an older backward operator from being served after the kernels change
    from multiarg import fused, fused_dac

    src = Path(fused.__file__).parent
    for ops, modules in (((fused._inner_op, fused._inner_backward_op), ("fused", "precision")),
                         ((fused_dac._dendritic_op, fused_dac._dendritic_backward_op), ("fused_dac", "fused"))):
        digest = hashlib.sha256(b"".join((src / f"{m}.py").read_bytes() for m in modules)).hexdigest()[:12]
        for op in ops:
            assert op._qualname.startswith("multiarg::") and op._qualname.endswith("_" + digest)
    assert fused.source_digest("fused") != fused.source_digest("fused", "precision")
