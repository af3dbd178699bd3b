"""The fused inner-net and DAC kernels against the PyTorch reference: on a CUDA GPU, or on the CPU through Triton's
interpreter.

Not collected by default. tests/test_fused.py runs this file in a fresh process with TRITON_INTERPRET=1 (the
interpreter must be on before Triton is first imported, and the rest of the suite must not run under it), and
again without it where CUDA is present. By hand on a GPU machine: ``python -m pytest tests/fused_cases.py``.
"""
import json
import os
import sys
from dataclasses import asdict
from functools import partial

import pytest
import torch

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
if not (INTERPRETED or torch.cuda.is_available()):
    pytest.skip("needs CUDA, or TRITON_INTERPRET=1 from the start (see tests/test_fused.py)", allow_module_level=True)
pytest.importorskip("triton")
DEVICE = torch.device("cpu" if INTERPRETED else "cuda")

from multiarg import fused, fused_dac  # noqa: E402
from multiarg.activations import InnerNet, MultiArgActivation, set_kernel  # noqa: E402
from multiarg.chunked import chunked_inner_net  # noqa: E402
from multiarg.data import load_prepared, split  # noqa: E402
from multiarg.dendritic import dendritic_product  # noqa: E402
from multiarg.fused import Launch, fused_activation, fused_inner, supported  # noqa: E402
from multiarg.fused_dac import Tiles, fused_dendritic  # noqa: E402
from multiarg.models import ModelConfig, OuterNet  # noqa: E402
from multiarg.precision import MODES, TENSORS, differentiated, emulated_inner_net, relative_error  # noqa: E402
from multiarg.train import TrainConfig, fit_run, frozen  # noqa: E402
from test_workflow import REPO, network_rules_run_on  # noqa: E402


class _Poisoned:
    """``torch`` for :mod:`multiarg.fused`, except that new buffers start as NaN."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def empty(*args, **kwargs):
        return torch.empty(*args, **kwargs).fill_(float("nan"))

    @staticmethod
    def empty_like(*args, **kwargs):
        return torch.empty_like(*args, **kwargs).fill_(float("nan"))


@pytest.fixture(autouse=True)
def poisoned_buffers(monkeypatch):
    # Freed memory comes back as it was (PyTorch's caching allocator, malloc): an output element a kernel failed
    # to write could hold a stale copy of the right value from an earlier identical call, and pass.
    for module in (fused, fused_dac):
        monkeypatch.setattr(module, "torch", _Poisoned())


@pytest.mark.parametrize("module", [fused, fused_dac])
def test_buffers_the_kernels_write_start_as_nan(module):
    assert module.torch.empty(3, device=DEVICE).isnan().all()
    assert module.torch.empty_like(torch.zeros(2, device=DEVICE)).isnan().all()


def _both(inner, x, mode="fp32", reference=None, fused=None):
    """Output and gradients (input and every parameter) of the reference and of the fused kernels."""
    ref = (reference or inner)(x)
    grad = torch.randn_like(ref)
    params = list(inner.parameters())
    ref_grads = torch.autograd.grad(ref, [x, *params], grad)
    out = (fused or (lambda v: fused_inner(inner, v, mode)))(x)
    return (ref, *ref_grads), (out, *torch.autograd.grad(out, [x, *params], grad))


@pytest.mark.parametrize("n_args", [1, 2, 3])
@pytest.mark.parametrize("points", [1, 63, 300])  # under one block, one short of a block, several per program
@pytest.mark.parametrize("hidden", [16, 32])
def test_fp32_forward_and_every_gradient_match_the_reference(n_args, points, hidden):
    torch.manual_seed(points + hidden)
    inner = InnerNet(n_args, hidden).to(DEVICE)
    x = (2 * torch.randn(points, n_args, device=DEVICE)).requires_grad_()
    assert supported(inner, x)
    for ref, got in zip(*_both(inner, x)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_leading_dimensions_are_kept():
    torch.manual_seed(0)
    inner = InnerNet(2, 16).to(DEVICE)
    x = torch.randn(3, 5, 7, 2, device=DEVICE, requires_grad=True)
    (ref, ref_dx, *_), (got, dx, *_) = _both(inner, x)
    assert got.shape == (3, 5, 7) and dx.shape == x.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_args", [1, 2, 3])
@pytest.mark.parametrize("shape,dim", [((5, 7), 1), ((3, 5, 4, 3), 1), ((2, 3, 5), -1), ((4, 3, 6), 0)])
def test_layers_are_read_in_place_in_every_layout(n_args, shape, dim):
    # an MLP layer (B, nC), a conv layer (B, nC, H, W), a recurrent cell (..., nC), and features on axis 0
    torch.manual_seed(n_args)
    act = MultiArgActivation(InnerNet(n_args, 16), dim=dim).to(DEVICE)
    shape = list(shape)
    shape[dim] *= n_args
    z = torch.randn(*shape, device=DEVICE, requires_grad=True)
    for ref, got in zip(*_both(act.inner, z, reference=act, fused=lambda v: fused_activation(act.inner, v, dim))):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("launch", [Launch(16, 1, 1), Launch(32, 2, 3), Launch(128, 8, 1)])
def test_every_launch_gives_the_reference_result(launch):
    # one program walking over all blocks, several with uneven shares, and one block larger than the input
    torch.manual_seed(2)
    inner = InnerNet(3, 16).to(DEVICE)
    x = torch.randn(100, 3, device=DEVICE, requires_grad=True)
    for ref, got in zip(*_both(inner, x, fused=lambda v: fused_inner(inner, v, launch=launch))):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_args", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_rounds_as_its_emulation(mode, n_args):
    # The kernels round exactly the operands multiarg.precision says, as a GPU rounds them (whose error against
    # float64 tests/test_precision.py bounds); what is left is fp32 summation order. On a GPU, a TF32 result off
    # by ~1e-3 here would mean its tensor cores round the operands rather than cut them.
    torch.manual_seed(n_args)
    inner = InnerNet(n_args, 32).to(DEVICE)
    x, grad = torch.randn(300, n_args, device=DEVICE), torch.randn(300, device=DEVICE)
    got = differentiated(lambda v: fused_inner(inner, v, mode), inner, x, grad)
    emulated = emulated_inner_net(inner, x, grad, mode)
    for name in TENSORS:
        assert relative_error(got[name].reshape(emulated[name].shape), emulated[name])["norm"] < 1e-4, name


@pytest.mark.parametrize("mode", MODES)
def test_the_chunked_kernel_computes_what_the_fused_kernels_do_on_this_device(mode):
    # multiarg.chunked is the kernels' algorithm in PyTorch: in the same mode on the same device it gives the same
    # results up to fp32 summation order (600 points in chunks of 256: a tail, and weight gradients summed over chunks)
    torch.manual_seed(0)
    inner = InnerNet(2, 32).to(DEVICE)
    x, grad = torch.randn(600, 2, device=DEVICE), torch.randn(600, device=DEVICE)
    fused_result = differentiated(lambda v: fused_inner(inner, v, mode), inner, x, grad)
    chunked_result = differentiated(lambda v: chunked_inner_net(inner, v, mode, chunk=256), inner, x, grad)
    for name in TENSORS:
        assert relative_error(chunked_result[name], fused_result[name])["norm"] < 1e-4, name


def test_unsupported_inner_nets_are_refused():
    x = torch.randn(4, 2, device=DEVICE)
    assert not supported(InnerNet(2, 24), x)  # not a power of two
    assert not supported(InnerNet(2, 256), x)  # more shared memory than an SM has
    assert supported(InnerNet(2, 128), x.to(DEVICE))
    assert not supported(InnerNet(2, 32, depth=3), x)
    assert not supported(InnerNet(2, 16).double(), x.double())  # would silently run at fp32's accuracy
    with pytest.raises(ValueError, match="mode"):
        fused_inner(InnerNet(2, 16).to(DEVICE), x, "fp16")
    with pytest.raises(ValueError, match="cannot be split"):
        fused_activation(InnerNet(2, 16).to(DEVICE), torch.randn(2, 7, device=DEVICE), 1)


def test_a_double_backward_through_the_kernels_is_refused_not_silently_wrong():
    """The kernels' gradients carry no graph, so a gradient penalty through them would lose its second-order part."""
    torch.manual_seed(0)
    inner = InnerNet(2, 16).to(DEVICE)
    x = torch.randn(40, 2, device=DEVICE, requires_grad=True)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(fused_inner(inner, x, "fp32").sum(), x, create_graph=True)
    weight = torch.randn(3, 4, device=DEVICE, requires_grad=True)
    y = fused_dendritic(torch.randn(2, 4, 5, device=DEVICE), weight, torch.zeros(3, 4, device=DEVICE), Tiles())
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(y.sum(), weight, create_graph=True)
    (dw,) = torch.autograd.grad(y.sum(), weight)  # a first-order gradient as before
    assert dw.shape == weight.shape


def _dac_both(x, weight, dendrite_bias, tiles):
    """Output and gradients (those of the tensors that require one) of the eager DAC product and the fused one."""
    wrt = [t for t in (x, weight, dendrite_bias) if t.requires_grad]
    ref = dendritic_product(x, weight, dendrite_bias)
    grad = torch.randn_like(ref)
    got = fused_dendritic(x, weight, dendrite_bias, tiles)
    return (ref, *torch.autograd.grad(ref, wrt, grad)), (got, *torch.autograd.grad(got, wrt, grad))


@pytest.mark.parametrize("batch,n_in,length,n_out", [
    (0, 3, 5, 4), (1, 1, 1, 1), (3, 27, 7, 5), (2, 40, 1, 33), (4, 5, 50, 6), (1, 5, 301, 6)])  # 27: 3 x 3 x 3
@pytest.mark.parametrize("tiles", [Tiles(), Tiles(points=16, units=16, unroll=1, programs_per_sm=8)])
def test_dac_forward_and_every_gradient_match_the_eager_path(batch, n_in, length, n_out, tiles):
    # an empty batch; 33 outputs, one past a tile; and the small tiles share the weight gradient of the last two
    # cases between programs: 3 programs over 4 whole images, 4 over spans of 76 locations of one image
    torch.manual_seed(n_in + n_out)
    x = torch.randn(batch, n_in, length, device=DEVICE, requires_grad=True)
    weight = torch.randn(n_out, n_in, device=DEVICE, requires_grad=True)
    dendrite_bias = (0.5 * torch.randn(n_out, n_in, device=DEVICE)).requires_grad_()
    assert fused_dac.supported(x, weight, dendrite_bias)
    for ref, got in zip(*_dac_both(x, weight, dendrite_bias, tiles)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_nan_propagates_as_through_pytorch():
    """A NaN input or weight must give NaN where PyTorch's ReLU gives it: were it clamped to 0, a diverged network
    would keep a finite loss and train on unnoticed."""
    torch.manual_seed(0)
    inner = InnerNet(2, 16).to(DEVICE)
    x = torch.randn(40, 2, device=DEVICE)
    x[3, 0] = float("nan")
    got = fused_inner(inner, x, "fp32")
    assert got[3].isnan() and got.isnan().sum() == 1
    with torch.no_grad():
        inner.net[0].weight[5, 1] = float("nan")
    torch.testing.assert_close(fused_inner(inner, x, "fp32"), inner(x), equal_nan=True)
    assert inner(x).isnan().all()
    x = torch.randn(2, 3, 5, device=DEVICE)
    x[1, 2, 4] = float("nan")
    weight, dendrite_bias = torch.randn(4, 3, device=DEVICE), torch.randn(4, 3, device=DEVICE)
    got = fused_dendritic(x, weight, dendrite_bias, Tiles())
    torch.testing.assert_close(got, dendritic_product(x, weight, dendrite_bias), equal_nan=True)
    assert got[1, :, 4].isnan().all() and got.isnan().sum() == 4


def test_dac_input_gradient_is_skipped_where_not_needed():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 10, device=DEVICE)  # a first layer's patches
    weight, dendrite_bias = (torch.randn(4, 9, device=DEVICE, requires_grad=True) for _ in range(2))
    ref, got = _dac_both(x, weight, dendrite_bias, Tiles())
    assert len(got) == 3
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_args", [1, 2, 3])
def test_a_frozen_inner_net_gives_the_input_gradient_without_the_weights(n_args, monkeypatch):
    # what PGD and AutoAttack ask for: the backward kernel runs without its weight products and accumulators
    torch.manual_seed(n_args)
    inner = InnerNet(n_args, 16).to(DEVICE)
    z = torch.randn(3, n_args * 5, 7, device=DEVICE, requires_grad=True)  # 105 points: a tail in every block
    grad = torch.randn(3, 5, 7, device=DEVICE)
    full = torch.autograd.grad(fused_activation(inner, z), z, grad)[0]
    backward, weights = fused._backward, []
    monkeypatch.setattr(fused, "_backward", lambda *args: weights.append(args[-1]) or backward(*args))
    with frozen(inner):
        alone = torch.autograd.grad(fused_activation(inner, z), z, grad)[0]
    assert weights == [False] and all(p.requires_grad for p in inner.parameters())
    torch.testing.assert_close(alone, full, rtol=1e-6, atol=1e-6)


def test_a_frozen_dac_layer_gives_the_input_gradient_without_the_weights():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 10, device=DEVICE, requires_grad=True)
    weight, dendrite_bias = torch.randn(4, 9, device=DEVICE), torch.randn(4, 9, device=DEVICE)
    ref, got = _dac_both(x, weight, dendrite_bias, Tiles())
    assert len(got) == 2  # the output and the input's gradient
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_dac_benchmark_times_the_fused_kernels_beside_eager():
    sys.path.insert(0, str(REPO / "bench"))
    import dac_layer

    shape = {"layer": "small/2", "batch": 2, "n_in": 9, "length": 20, "n_out": 5}
    row = dac_layer.measure(shape, {"eager": None, "fused": Tiles()}, DEVICE, 1, 1)
    assert set(row["variants"]) == {"eager", "fused"} and not row["failed"]
    fused = row["variants"]["fused"]
    assert fused["tiles"] == asdict(Tiles()) and fused["seconds"] > 0 and fused["warm_up_seconds"] > 0
    assert fused["error_vs_fp64"]["output"] < 1e-6 and fused["error_vs_fp64"]["gradients"] < 1e-5


def test_inner_net_benchmark_compiles_each_fused_kernel_pair_ahead_in_other_processes():
    sys.path.insert(0, str(REPO / "bench"))
    import inner_net

    jobs = inner_net.ahead_jobs([2], 16, 100, sweep=True)
    assert len(jobs) == len(MODES) + len(inner_net.SWEEP_MODES) * 6  # the sweep's 3 blocks x 2 warps
    ahead = inner_net.compile_ahead(jobs, workers=2)
    assert ahead["failed"] == {} and ahead["jobs"] == sorted(jobs)


def test_step_dac_and_estimate_benchmarks_compile_their_fused_variants_ahead_in_other_processes():
    sys.path.insert(0, str(REPO / "bench"))
    import dac_layer
    import estimate_cost
    import train_step

    shape = {"layer": "small/2", "batch": 2, "n_in": 9, "length": 20, "n_out": 5}
    layers = dac_layer.ahead_jobs([shape, {**shape, "layer": "small/1"}], sweep=True)
    assert len(layers) == 2 + len(dac_layer.SWEEP)
    steps = train_step.ahead_jobs(["mnist-mlp"], train_step.all_names(["relu", "dac"], {}, DEVICE), 2)
    assert list(steps) == ["mnist-mlp dac/fused-fp32"]  # nothing of ReLU's or the eager path's to compile
    session1 = partial(estimate_cost._time_once, ("inner", "arg2"), estimate_cost.load_config(), "fused-tf32")
    ahead = train_step.compile_ahead({"small/1": layers["small/1"], "small/2": layers["small/2"], **steps,
                                      "session I": session1}, workers=2)
    assert ahead["failed"] == {}


def test_training_step_benchmark_times_dac_on_its_fused_kernels_and_compiled_fused_steps(tmp_path, monkeypatch):
    # one fused variant stands for every mode: DAC's kernels are fp32 whichever is chosen
    sys.path.insert(0, str(REPO / "bench"))
    import train_step

    assert train_step.variant_names("dac", DEVICE) == ["dac/eager", "dac/fused-fp32"]
    for module in (fused, fused_dac):
        monkeypatch.setattr(module, "torch", torch)  # Dynamo traces the module's own torch
    out = tmp_path / "step.json"
    train_step.main(["--settings", "mnist-mlp", "--activations", "arg2", "--batch", "2", "--repeats", "1",
                     "--rounds", "1", "--compile", "arg2/fused-tf32", "--out", str(out)])
    setting = json.loads(out.read_text())["settings"]["mnist-mlp"]
    assert not setting["failed"] and setting["variants"]["arg2/fused-tf32+compile"]["seconds"] > 0


def test_dac_refuses_what_it_cannot_run():
    x, weight = torch.randn(2, 3, 4, device=DEVICE), torch.randn(5, 3, device=DEVICE)
    assert not fused_dac.supported(x.double(), weight.double())
    with pytest.raises(ValueError, match="expected x"):
        fused_dendritic(x, weight, torch.randn(5, 4, device=DEVICE))


@pytest.fixture
def kernel():
    """Restores the eager kernel after a test that chooses another."""
    yield set_kernel
    set_kernel("eager")


def _loss_and_grads(model, x):
    loss = model(x).square().mean()
    return (loss, *torch.autograd.grad(loss, list(model.parameters())))


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a fallback to eager would pass unnoticed
@pytest.mark.parametrize("activation", ["arg2", "dac"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_outer_net_with_the_fused_kernel_matches_eager(arch, activation, kernel):
    # Odd widths and a 7x7 image: the inner net sees 5 * 3 * 7 * 7 = 735 points per layer, not a block multiple.
    torch.manual_seed(0)
    cfg = ModelConfig(arch, activation, (1, 7, 7), 10, (3, 5), dropout=0.0, inner_hidden=16, pool_after=())
    model = OuterNet(cfg).to(DEVICE)
    x = torch.rand(5, 1, 7, 7, device=DEVICE)
    ref = _loss_and_grads(model, x)
    kernel("fused-fp32")
    for want, got in zip(ref, _loss_and_grads(model, x)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_the_custom_operators_pass_torchs_checks(monkeypatch):
    # schema, fake (meta) kernels, autograd registration and tracing by AOTAutograd, as torch.compile uses them
    for module in (fused, fused_dac):
        monkeypatch.setattr(module, "torch", torch)  # opcheck compares fresh calls: no NaN-filled buffers here
    torch.manual_seed(0)
    inner = InnerNet(2, 16).to(DEVICE)
    weights = [p.detach().requires_grad_() for p in inner.parameters()]
    x = torch.randn(3, 2, 37, device=DEVICE, requires_grad=True)
    torch.library.opcheck(fused._inner_op, (x, *weights, "fp32", *asdict(Launch(16, 1, 2)).values()))
    x, w, d = (torch.randn(*s, device=DEVICE, requires_grad=True) for s in ((2, 27, 5), (33, 27), (33, 27)))
    torch.library.opcheck(fused_dac._dendritic_op, (x, w, d, *asdict(fused_dac.TILES).values()))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("arch,activation", [("cnn", "arg2"), ("mlp", "dac")])
def test_a_compiled_network_runs_the_fused_kernels_in_one_graph(arch, activation, kernel, monkeypatch):
    # fullgraph: a graph break (say, Dynamo stepping into a Triton launch) fails here instead of silently running
    # the step in pieces; the kernels are then the custom operators, and must agree with their eager entry
    for module in (fused, fused_dac):
        monkeypatch.setattr(module, "torch", torch)  # Dynamo traces the module's own torch
    torch.manual_seed(0)
    cfg = ModelConfig(arch, activation, (1, 7, 7), 10, (3, 5), dropout=0.0, inner_hidden=16, pool_after=(0,))
    model = OuterNet(cfg).to(DEVICE)
    x = torch.rand(5, 1, 7, 7, device=DEVICE)
    kernel("fused-fp32")
    ref = _loss_and_grads(model, x)
    torch._dynamo.reset()
    got = _loss_and_grads(torch.compile(model, fullgraph=True), x)
    for want, have in zip(ref, got):
        torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-6)


def _curve(kernel, name, splits, cfg, seed, epochs, out_dir):
    """(train loss, val loss, test accuracy) per epoch of one run with the ``name`` kernel."""
    kernel(name)
    torch.manual_seed(seed)
    result = fit_run(OuterNet(cfg), splits, TrainConfig(seed=seed, max_epochs=epochs, batch_size=32), out_dir,
                     {"run": seed}, device=DEVICE)
    assert len(result["history"]) == epochs
    return [(r["train_loss"], r["val_loss"], r["test_acc"]) for r in result["history"]]


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_training_with_the_fused_kernel_reproduces_the_eager_curve(tmp_path, mnist_pt, kernel):
    splits = split(load_prepared(mnist_pt), val_size=100, split_seed=0, train_limit=200, test_limit=100)
    cfg = ModelConfig("mlp", "arg2", (1, 28, 28), 10, (8, 8), inner_hidden=16)
    want, got = (_curve(kernel, name, splits, cfg, 0, 2, tmp_path / name) for name in ("eager", "fused-fp32"))
    for w, g in zip(want, got):
        assert g == pytest.approx(w, rel=1e-4, abs=1e-6)


def test_every_network_rule_of_the_workflow_runs_on_the_fused_kernel(tmp_path, mirror):
    # TF32: any mode tests the routing, and its launch's 64-point blocks take the interpreter half the steps of fp32's
    network_rules_run_on(tmp_path, mirror, "fused-tf32")


if not INTERPRETED:  # minutes of interpreted kernels per epoch
    @pytest.mark.filterwarnings("error::RuntimeWarning")
    @pytest.mark.parametrize("name", ["fused-tf32", "fused-tf32x3", "fused-bf16"])
    def test_reduced_precision_training_stays_within_seed_noise(tmp_path, mnist_pt, kernel, name):
        # same seed as the eager run: the fused run should differ from it by less than a change of seed does
        splits = split(load_prepared(mnist_pt), val_size=500, split_seed=0, train_limit=5000, test_limit=2000)
        cfg = ModelConfig("mlp", "arg2", (1, 28, 28), 10, (32, 32), inner_hidden=64)
        runs = {(k, s): _curve(kernel, k, splits, cfg, s, 3, tmp_path / f"{k}{s}")[-1]
                for k, s in (("eager", 0), ("eager", 1), (name, 0))}
        seed_gap = abs(runs["eager", 1][2] - runs["eager", 0][2])
        assert abs(runs[name, 0][2] - runs["eager", 0][2]) <= max(seed_gap, 0.01)
        assert runs[name, 0][0] == pytest.approx(runs["eager", 0][0], rel=0.05)
