import pytest
import torch

from multiarg.activations import InnerNet
from multiarg.data import load_prepared, split
from multiarg.models import ModelConfig, OuterNet
from multiarg.chunked import chunked_inner_net
from multiarg.precision import (ERROR_BOUNDS, TENSORS, differentiated, emulated_inner_net, product, relative_error,
                                round_operand)
from multiarg.train import TrainConfig, fit_run


def test_tf32_keeps_the_top_ten_mantissa_bits():
    t = torch.randn(10_000) * 10.0 ** torch.randint(-20, 20, (10_000,))
    r = round_operand(t, "tf32")
    assert (r.view(torch.int32) & 0x1FFF == 0).all()
    assert (r.abs() <= t.abs()).all() and (r.sign() == t.sign()).all()  # cut, not rounded
    assert ((r - t).abs() / t.abs()).max() < 2.0 ** -10
    exact = torch.tensor([1.5, -0.75, 1023.0, 2.0 ** -30])
    assert torch.equal(round_operand(exact, "tf32"), exact)


def test_bf16_rounds_to_nearest_even_and_fp32_is_untouched():
    t = torch.randn(10_000)
    assert torch.equal(round_operand(t, "bf16"), t.to(torch.bfloat16).float())
    assert ((round_operand(t, "bf16") - t).abs() / t.abs()).max() <= 2.0 ** -8
    assert round_operand(t, "fp32") is t
    with pytest.raises(ValueError, match="float32"):
        round_operand(t.double(), "tf32")
    with pytest.raises(ValueError, match="mode"):
        round_operand(t, "fp16")
    with pytest.raises(ValueError, match="tf32x3"):
        round_operand(t, "tf32x3")  # not one rounding: multiarg.precision.product splits its operands


def test_tf32x3_makes_a_product_about_as_exact_as_fp32():
    torch.manual_seed(0)
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    exact = a.double() @ b.double()
    errors = {mode: relative_error(product(a, b, mode), exact)["norm"] for mode in ("fp32", "tf32x3", "tf32")}
    assert errors["tf32x3"] < 4 * errors["fp32"] and errors["tf32"] > 100 * errors["tf32x3"]


@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_emulation_without_rounding_is_the_module(dtype, tolerance):
    torch.manual_seed(0)
    inner = InnerNet(3, 16).to(dtype)
    x, grad = torch.randn(500, 3, dtype=dtype), torch.randn(500, dtype=dtype)
    expected, got = differentiated(inner, inner, x, grad), emulated_inner_net(inner, x, grad)
    for name in TENSORS:
        torch.testing.assert_close(got[name].reshape(expected[name].shape), expected[name], rtol=tolerance,
                                   atol=tolerance)


@pytest.mark.parametrize("n_args", [1, 2, 3])
def test_reduced_precision_errors_stay_within_the_stated_bounds(n_args):
    # The gradients' error is far above the output's: rounding switches a few second-layer ReLUs on or off, and
    # each passes a whole term of a gradient or none of it.
    for seed in range(3):
        torch.manual_seed(seed)
        inner = InnerNet(n_args, 64)
        x, grad = torch.randn(4096, n_args), torch.randn(4096)
        reference = emulated_inner_net(inner, x.double(), grad)
        output = {}
        for mode, (forward, gradients) in ERROR_BOUNDS.items():
            got = emulated_inner_net(inner, x, grad, mode)
            errors = {name: relative_error(got[name], reference[name])["norm"] for name in TENSORS}
            output[mode] = errors["output"]
            assert errors.pop("output") < forward
            assert max(errors.values()) < gradients
            assert ((got["h2"] > 0) != (reference["h2"] > 0)).any() == (mode in ("tf32", "bf16"))
        assert 0 < output["tf32x3"] < output["tf32"] / 100 < output["bf16"] / 100
        assert 0 < output["fp32"] < output["tf32"] / 100


def test_the_chunked_inner_net_in_a_mode_is_differentiable_and_without_rounding_the_module():
    torch.manual_seed(0)
    inner = InnerNet(2, 16)
    x = torch.randn(7, 5, 2, requires_grad=True)
    grads = [torch.autograd.grad((f(x) ** 2).sum(), [x, *inner.parameters()])
             for f in (inner, lambda v: chunked_inner_net(inner, v, "fp32"))]
    for want, got in zip(*grads):
        torch.testing.assert_close(got, want)
    rounded = torch.autograd.grad((chunked_inner_net(inner, x, "bf16") ** 2).sum(), x)[0]
    assert 0 < (rounded - grads[0][0]).abs().max() < 0.1 * grads[0][0].abs().max()
    with pytest.raises(ValueError, match="depth 2"):
        chunked_inner_net(InnerNet(2, 16, depth=3), x, "tf32")


def test_training_in_the_rounding_of_tf32_and_bf16_stays_within_seed_noise(tmp_path, mnist_pt, monkeypatch):
    # The gradients' error above is noise to the optimiser: the run with TF32's or bf16's arithmetic (which
    # tests/fused_cases.py shows the kernels compute) ends as close to the same-seed fp32 run as another seed does,
    # or as two runs' accuracies on 1 000 test images differ by chance (two standard errors of a difference).
    test_images = 1000
    splits = split(load_prepared(mnist_pt), val_size=500, split_seed=0, train_limit=3000, test_limit=test_images)
    cfg = ModelConfig("mlp", "arg2", (1, 28, 28), 10, (32, 32), inner_hidden=64)

    def run(mode, seed):
        monkeypatch.setattr(InnerNet, "forward", lambda self, x: chunked_inner_net(self, x, mode))
        torch.manual_seed(seed)
        result = fit_run(OuterNet(cfg), splits, TrainConfig(seed=seed, max_epochs=3, batch_size=32),
                         tmp_path / f"{mode}{seed}", {"run": seed}, device=torch.device("cpu"))
        last = result["history"][-1]
        return last["train_loss"], last["test_acc"]

    (loss, acc), (_, other_seed) = run("fp32", 0), run("fp32", 1)
    chance = 2 * (2 * acc * (1 - acc) / test_images) ** 0.5
    for mode in ("tf32", "bf16"):
        mode_loss, mode_acc = run(mode, 0)
        assert abs(mode_acc - acc) <= max(abs(other_seed - acc), chance)
        assert mode_loss == pytest.approx(loss, rel=0.05)
