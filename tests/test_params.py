import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from multiarg import (ModelConfig, OuterNet, count_parameters, exact_param_count, inner_param_count,
                      matched_widths, paper_mlp_param_count)
from multiarg.params import _hidden_layers, forward_flops

CASES = [("mlp", (1, 28, 28), (64, 64, 64)), ("mlp", (3, 32, 32), (10, 20)), ("cnn", (3, 32, 32), (60, 120, 120, 120)),
         ("cnn", (1, 28, 28), (5, 7, 9, 11))]


@pytest.mark.parametrize("arch,shape,widths", CASES)
@pytest.mark.parametrize("activation", ["relu", "arg1", "arg2", "arg3", "gamma", "dac"])
@pytest.mark.parametrize("layernorm", [True, False])
def test_closed_form_count_equals_the_built_network(arch, shape, widths, activation, layernorm):
    cfg = ModelConfig(arch, activation, shape, 10, widths, layernorm=layernorm)
    assert exact_param_count(cfg) == count_parameters(OuterNet(cfg))


@pytest.mark.parametrize("arch,shape,widths", CASES[1:2] + CASES[3:])
@pytest.mark.parametrize("activation", ["relu", "arg1", "arg2", "arg3", "gamma"])
def test_forward_flops_equal_torchs_flop_counter(arch, shape, widths, activation):
    cfg = ModelConfig(arch, activation, shape, 10, widths)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        OuterNet(cfg).eval()(torch.rand(2, *shape))
    assert forward_flops(cfg) == counter.get_total_flops() // 2


@pytest.mark.parametrize("arch,shape,widths", CASES)
def test_dac_flops_double_the_weighted_sums_of_the_same_widths(arch, shape, widths):
    relu, dac = (ModelConfig(arch, a, shape, 10, widths) for a in ("relu", "dac"))
    head = 2 * 10 * _hidden_layers(relu)[1]  # the read-out is linear in both
    assert forward_flops(dac) - head == 2 * (forward_flops(relu) - head)


def test_inner_net_count_against_the_papers_term():
    # paper: 65n + 4288; the n -> 64 -> 64 -> 1 MLP with biases has 64n + 4289 (equal only for n = 1)
    assert [inner_param_count(n) for n in (1, 2, 3)] == [4353, 4417, 4481]
    assert [65 * n + 4288 for n in (1, 2, 3)] == [4353, 4418, 4483]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_paper_formula_differs_only_by_the_terms_it_leaves_out(n):
    x, y, widths = 784, 10, (64, 48, 32)
    cfg = ModelConfig("mlp", f"arg{n}", (1, 28, 28), y, widths)
    biases = sum(n * h for h in widths) + y
    layernorm = 2 * sum(n * h for h in widths)
    paper = paper_mlp_param_count(x, widths, y, n)
    # the paper counts x extra weights (x(nh1 + 1)) and 65n + 4288 for the inner net
    assert exact_param_count(cfg) == paper - x + biases + layernorm - (65 * n + 4288) + inner_param_count(n)


def test_paper_formula_has_no_inner_net_term_for_relu():
    x, y, widths = 784, 10, (64, 48, 32)
    biases, layernorm = sum(widths) + y, 2 * sum(widths)
    paper = paper_mlp_param_count(x, widths, y, 1, inner=False)
    assert exact_param_count(ModelConfig("mlp", "relu", (1, 28, 28), y, widths)) == paper - x + biases + layernorm


@pytest.mark.parametrize("arch,shape,widths", [CASES[0], CASES[2]])
@pytest.mark.parametrize("baseline,measure,tolerance", [
    *((b, exact_param_count, 0.01) for b in ("relu", "arg1", "gamma", "dac")),
    *((b, forward_flops, 0.02) for b in ("relu-flops", "arg1-flops", "dac-flops"))])
def test_matched_widths_minimise_the_mismatch(arch, shape, widths, baseline, measure, tolerance):
    """Parameters for a plain name, forward FLOPs for a -flops one."""
    ref = ModelConfig(arch, "arg2", shape, 10, widths)
    target = measure(ref)
    matched, beta = matched_widths(ref, baseline)
    assert matched == tuple(math.floor(math.sqrt(2) * h) + beta for h in widths)

    def mismatch(b):
        widths_b = tuple(math.floor(math.sqrt(2) * h) + b for h in widths)
        return abs(measure(ref.replace(activation=baseline, widths=widths_b)) - target)

    assert mismatch(beta) <= min(mismatch(beta - 1), mismatch(beta + 1))
    assert mismatch(beta) / target < tolerance


@pytest.mark.parametrize("arch,shape,widths", [CASES[0], CASES[2]])
@pytest.mark.parametrize("baseline", ["relu-flops", "arg1-flops", "dac-flops"])
def test_flop_matching_widens_relu_and_narrows_1_arg(arch, shape, widths, baseline):
    """The ReLU (and DAC) one is wider than its parameter-matched twin (2-arg spends its inner net's FLOPs at every
    unit), the 1-arg one narrower (the parameter-matched 1-arg evaluates twice as many inner nets as 2-arg)."""
    ref = ModelConfig(arch, "arg2", shape, 10, widths)
    matched = matched_widths(ref, baseline)[0]
    by_params = matched_widths(ref, baseline.removesuffix("-flops"))[0]
    assert (matched > by_params) if baseline != "arg1-flops" else (matched < by_params)
    flops = ref.replace(activation=baseline, widths=matched)
    assert count_parameters(OuterNet(flops)) == exact_param_count(flops)


def test_matched_widths_reach_any_beta():
    """Wide layers need DAC widths far below sqrt(2) h (about -0.4 h): the match must not stop at a fixed bound."""
    ref = ModelConfig("mlp", "arg2", (1, 28, 28), 10, (256, 256, 256))
    widths, beta = matched_widths(ref, "dac")
    assert beta < -64 and abs(exact_param_count(ref.replace(activation="dac", widths=widths)) / exact_param_count(ref)
                               - 1) < 0.002


def test_scale_widening_keeps_the_references_shape():
    """The paper CNN's DAC net: an offset (the paper's rule) narrows the first layer most, a scale keeps 1:2:2:2."""
    ref = ModelConfig("cnn", "arg2", (3, 32, 32), 10, (60, 120, 120, 120))
    target = exact_param_count(ref)
    assert matched_widths(ref, "dac") == ((40, 125, 125, 125), -44)
    widths, scale = matched_widths(ref, "dac", "scale")
    assert widths == (60, 121, 121, 121) and scale == round(423 / 420, 4)

    def mismatch(w):
        return abs(exact_param_count(ref.replace(activation="dac", widths=w)) - target)

    assert mismatch(widths) / target < 0.007
    # the neighbouring shape-kept widths on either side of the target match worse
    assert all(mismatch(tuple(max(1, round(s * h)) for h in ref.widths)) >= mismatch(widths)
               for s in (0.99, 1.0, 1.0125, 1.02))
    for baseline in ("relu", "gamma", "dac", "relu-flops", "dac-flops"):  # one s rounds to every width
        w, _ = matched_widths(ref, baseline, "scale")
        assert max((x - 0.5) / h for x, h in zip(w, ref.widths)) < min((x + 0.5) / h for x, h in zip(w, ref.widths))
    with pytest.raises(ValueError, match="widening"):
        matched_widths(ref, "dac", "stretch")


def test_the_param_table_says_how_it_widened(tmp_path):
    import csv

    from multiarg.cli import main

    rows = {}
    for widening in ("offset", "scale"):
        out = tmp_path / f"{widening}.csv"
        main(["param-table", "--out", str(out), "--datasets", "cifar10", "--activations", "arg2,relu,dac,relu-width",
              "--matched", "relu,dac", "--match-to", "arg2", "--mlp-widths", "64,64,64",
              "--cnn-widths", "60,120,120,120", "--widening", widening])
        with open(out) as fh:
            rows[widening] = {(r["arch"], r["activation"]): r for r in csv.DictReader(fh)}
        assert f"matching.widening: {widening}" in out.with_suffix(".md").read_text()
    offset, scale = rows["offset"]["cnn", "dac"], rows["scale"]["cnn", "dac"]
    assert (offset["widths"], offset["beta"], offset["scale"]) == ("40/125/125/125", "-44", "")
    assert (scale["widths"], scale["beta"], scale["scale"]) == ("60/121/121/121", "", str(round(423 / 420, 4)))
    assert rows["scale"]["cnn", "arg2"]["widths"] == "60/120/120/120" and rows["scale"]["cnn", "arg2"]["scale"] == ""
    same = rows["offset"]["cnn", "relu-width"]  # the reference's widths, unmatched: fewer parameters
    assert (same["widths"], same["beta"]) == ("60/120/120/120", "") and int(same["mismatch"]) < 0
    relu = ModelConfig("cnn", "relu", (3, 32, 32), 10, (60, 120, 120, 120))
    assert int(same["params_exact"]) == exact_param_count(relu)


def test_a_same_width_baseline_is_never_matched():
    with pytest.raises(ValueError, match="keeps the reference's widths"):
        matched_widths(ModelConfig("mlp", "arg2", (1, 28, 28), 10, (64, 64)), "relu-width")
