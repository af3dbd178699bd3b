"""The benchmark scripts run and record what they measured (on the CPU: the eager variants only)."""
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


AHEAD_SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
from functools import partial

import torch
from common import compile_ahead


def step(width):
    layers = torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)
    model = torch.compile(torch.nn.Sequential(*layers))
    model(torch.randn(8, width)).sum().backward()


if __name__ == "__main__":
    from torch._dynamo.utils import counters

    print("failed", compile_ahead({{"step": partial(step, 4)}})["failed"])
    step(4)
    print("cache", dict(counters["aot_autograd"]))
"""


def test_a_graph_compiled_ahead_by_a_script_is_found_in_the_cache_by_the_script(tmp_path):
    # a script that imports torch, as every benchmark does: the spawned process must key its graphs as the script
    script = tmp_path / "ahead.py"
    script.write_text(AHEAD_SCRIPT.format(bench=str(ROOT / "bench")))
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed {}" in done.stdout and "'autograd_cache_hit': 1" in done.stdout, done.stdout


def test_train_step_records_every_variant_against_relu(tmp_path, monkeypatch):
    train_step = pytest.importorskip("train_step")
    out, names = tmp_path / "step.json", []
    write = train_step.write
    monkeypatch.setattr(train_step, "write", lambda result, name, path: names.append(name) or write(result, name, path))
    train_step.main(["--settings", "mnist-mlp", "--activations", "relu,arg2,dac", "--batch", "4", "--repeats", "1",
                     "--rounds", "1", "--profile", "arg2/eager,arg2/fused-bf16", "--out", str(out)])
    record = json.loads(out.read_text())
    rows = record["settings"]["mnist-mlp"]["variants"]
    profiles = record["settings"]["mnist-mlp"]["profiles"]
    assert set(profiles) == {"arg2/eager"}  # no fused kernel on a CPU: nothing to profile
    top = profiles["arg2/eager"]["top"]
    assert top and top[0]["ms_per_step"] >= top[-1]["ms_per_step"] and 0 < sum(e["share"] for e in top) <= 1 + 1e-9
    assert any("addmm" in e["name"] or "linear" in e["name"] for e in top)  # the MLP's matrix products show up
    assert set(rows) == {"relu/eager", "arg2/eager", "arg2/chunked", "dac/eager"}
    assert record["device"] and record["torch"]
    assert rows["relu/eager"]["time_vs_relu"] == 1.0 and all(r["seconds"] > 0 for r in rows.values())
    # matched to the 2-arg MLP's parameter count within 1 %
    assert abs(rows["relu/eager"]["params"] / rows["arg2/eager"]["params"] - 1) < 0.01
    # the eager inner net saves its two 64-wide hidden layers at every unit: even at 4 images, with the weights
    # the layers keep, several times what ReLU saves
    assert rows["arg2/eager"]["saved_vs_relu"] > 2 and rows["relu/eager"]["saved_bytes"] > 0
    assert rows["arg2/chunked"]["saved_bytes"] < rows["relu/eager"]["saved_bytes"]  # only the inner nets' inputs
    assert names == ["train_step-cpu"]  # the record's name, whatever the variants profiled or failed are called


def test_every_compiled_variant_is_compiled_whatever_dynamos_recompile_limit(tmp_path):
    # the variants share OuterNet.forward's code, one recompilation each: past the limit (1 here, 8 by default)
    # Dynamo would run the later ones eager, and they would be timed as compiled
    train_step = pytest.importorskip("train_step")
    from torch._dynamo.utils import counters

    counters.clear()
    out = tmp_path / "step.json"
    with train_step.torch._dynamo.config.patch(recompile_limit=1):  # (monkeypatch's undo would delete the key)
        train_step.main(["--settings", "mnist-mlp", "--activations", "relu,gamma", "--compile", "relu,gamma",
                         "--batch", "2", "--repeats", "1", "--rounds", "1", "--out", str(out)])
    rows = json.loads(out.read_text())["settings"]["mnist-mlp"]["variants"]
    assert {"relu/eager+compile", "gamma/eager+compile"} <= set(rows)
    assert counters["stats"]["unique_graphs"] >= 2


def test_saved_bytes_extend_linearly_from_one_and_two_images_to_a_batch(tmp_path):
    train_step = pytest.importorskip("train_step")
    cpu = train_step.torch.device("cpu")
    inputs = train_step.torch.rand(6, 3, 32, 32)
    for activation in ("relu", "arg2", "dac"):
        variant = train_step.Variant(f"{activation}/eager", train_step.build("cifar10-cnn", activation, cpu), inputs,
                                     train_step.torch.zeros(6, dtype=train_step.torch.long))
        assert variant.saved_bytes(5) == variant.saved_on(5) > variant.saved_on(1)
    out = tmp_path / "memory.json"
    train_step.main(["--settings", "mnist-mlp", "--activations", "relu,gamma", "--memory-only", "--out", str(out)])
    rows = json.loads(out.read_text())["settings"]["mnist-mlp"]["variants"]
    assert set(rows) == {"relu/eager", "gamma/eager"} and rows["relu/eager"]["saved_vs_relu"] == 1.0
    assert all(r["seconds"] is None and r["peak_bytes"] is None and r["saved_bytes"] > 0 for r in rows.values())


def test_train_step_compiles_only_the_variants_named_that_run_here():
    train_step = pytest.importorskip("train_step")
    cpu = train_step.torch.device("cpu")
    runnable = [name for a in ("relu", "arg2", "dac") for name in train_step.variant_names(a, cpu)]
    assert runnable == ["relu/eager", "arg2/eager", "arg2/chunked", "dac/eager"]  # no fused kernel on a CPU
    # a bare activation means its eager kernel; a fused kernel that cannot run here is left out, not timed as eager
    assert train_step.compiled_names(["relu", "arg2/fused-tf32", "dac/eager", ""], "graphs", runnable) == [
        "relu/eager+graphs", "dac/eager+graphs"]
    variant = train_step.Variant("relu/eager+graphs", train_step.build("mnist-mlp", "relu", cpu), None, None)
    assert variant.kernel == "eager" and variant.compiled and variant.saved_bytes(4) is None


def test_inner_net_records_throughput_and_error_per_argument_count(tmp_path):
    inner_net = pytest.importorskip("inner_net")
    out = tmp_path / "inner.json"
    inner_net.main(["--points", "2000", "--n-args", "1,3", "--repeats", "1", "--rounds", "1", "--chunks", "300,4096",
                    "--out", str(out)])
    record = json.loads(out.read_text())
    assert set(record["n_args"]) == {"1", "3"}
    variants = record["n_args"]["3"]["variants"]
    fp32 = variants["eager-fp32"]
    assert fp32["tflops"] > 0 and fp32["error_vs_fp64"]["output"] < 1e-5 and fp32["warm_up_seconds"] > 0
    for chunked in ("chunked-300", "chunked-4096"):  # several chunks (a tail of 200 points), and one
        assert variants[chunked]["tflops"] > 0 and variants[chunked]["error_vs_fp64"]["gradients"] < 1e-5
    assert record["n_args"]["3"]["variants"]["eager-bf16"]["error_vs_fp64"]["output"] > 1e-4  # bf16 really ran
    assert "compile_ahead" not in record  # only on CUDA, where kernels are compiled


def _pid_into(path: Path) -> None:
    path.write_text(str(os.getpid()))


def test_input_grad_times_attacks_with_and_without_the_weights_and_gets_one_gradient(tmp_path):
    input_grad = pytest.importorskip("input_grad")
    from multiarg.activations import get_kernel

    out = tmp_path / "ig.json"
    record = input_grad.main(["--configfile", str(ROOT / "tests" / "configs" / "tiny.yaml"), "--variants",
                              "arg2/chunked,dac/eager,relu/eager", "--batch", "2", "--repeats", "1", "--rounds", "1",
                              "--out", str(out)])
    assert json.loads(out.read_text()) == record and get_kernel() == "eager"
    assert len(record["networks"]) == 6 and "cifar10/cnn/dac/eager" in record["networks"]
    for name, r in record["networks"].items():
        assert set(r["seconds"]) == {"weights", "frozen"} and min(r["seconds"].values()) > 0
        assert r["max_abs_difference"] == 0, name  # the input's gradient is computed alike either way


def test_dropout_keeps_the_narrow_cnns_first_epoch_near_chance(tmp_path, mnist_pt):
    """FINDINGS' plateau, at the 2-arg study CNN's widths: one epoch of real MNIST at dropout 0.5 against none."""
    dropout_width = pytest.importorskip("dropout_width")
    out = tmp_path / "dw.json"
    record = dropout_width.main(["--datasets", "mnist", "--widths", "8/16/16/16", "--dropouts", "0.5,0", "--seeds",
                                 "0", "--epochs", "1", "--data", str(mnist_pt.parent), "--out", str(out)])
    assert json.loads(out.read_text()) == record
    (dropped,), (kept,) = ([r["test_acc"][0] for r in record["runs"] if r["dropout"] == d] for d in (0.5, 0))
    assert kept > 80 and dropped < kept - 30, (dropped, kept)


def test_eval_chunk_times_each_chunk_size_and_leaves_the_library_as_it_was(tmp_path):
    import torch

    eval_chunk = pytest.importorskip("eval_chunk")
    from multiarg import InnerNet, chunked

    before = dict(chunked.CHUNKS)
    out = tmp_path / "ec.json"
    record = eval_chunk.main(["--configfile", str(ROOT / "tests" / "configs" / "tiny.yaml"), "--activations",
                              "arg2,relu", "--chunks", "1048576,50", "--batch", "2", "--repeats", "1", "--rounds",
                              "1", "--out", str(out)])
    assert json.loads(out.read_text()) == record and chunked.CHUNKS == before
    assert set(record["networks"]) == {"cifar10/cnn/arg2", "cifar10/cnn/relu", "mnist/mlp/arg2", "mnist/mlp/relu"}
    for name, sizes in record["networks"].items():
        assert list(sizes) == ["1048576", "50"] and sizes["1048576"]["vs_first"] == 1
        assert all(v["seconds"] > 0 for v in sizes.values())
        # a piece's points do not meet each other: the outputs agree to float rounding, here exactly
        assert sizes["50"]["max_abs_difference"] <= 1e-6, name
    # and each size is the one the inner net runs at
    model = eval_chunk.outer_net(eval_chunk.load_config(str(ROOT / "tests" / "configs" / "tiny.yaml")), "mnist",
                                 "mlp", "arg2").eval()
    pieces = []
    inner = next(m for m in model.modules() if isinstance(m, InnerNet))
    inner.net.register_forward_hook(lambda module, inputs, output: pieces.append(inputs[0].shape[0]))
    eval_chunk._evaluate(model, torch.randn(2, 1, 28, 28), 5)
    assert pieces and max(pieces) == 5 and chunked.CHUNKS == before


def test_compile_ahead_runs_each_job_in_another_process_and_records_the_ones_that_fail(tmp_path):
    common = pytest.importorskip("common")
    jobs = {"a": partial(_pid_into, tmp_path / "a"), "b": partial(_pid_into, tmp_path / "b"), "bad": partial(int, "x")}
    ahead = common.compile_ahead(jobs, workers=2)
    assert ahead["jobs"] == ["a", "b", "bad"] and ahead["workers"] == 2 and ahead["seconds"] > 0
    assert list(ahead["failed"]) == ["bad"] and ahead["failed"]["bad"].startswith("ValueError")
    assert {int((tmp_path / n).read_text()) for n in "ab"}.isdisjoint({os.getpid()})


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_every_committed_record_is_strict_json():
    records = sorted((ROOT / "bench" / "results").rglob("*.json"))
    assert len(records) > 50
    for path in records:
        try:
            _strict_json(path.read_text())
        except ValueError as err:
            pytest.fail(f"{path.relative_to(ROOT)}: {err}")


def test_a_variant_that_cannot_run_is_recorded_and_the_others_still_measured(tmp_path, monkeypatch):
    inner_net = pytest.importorskip("inner_net")
    eager = inner_net._eager

    def broken_bf16(mode):
        if mode != "bf16":
            return eager(mode)

        def run(net, x):
            raise RuntimeError("no bf16 here")
        return run

    monkeypatch.setattr(inner_net, "_eager", broken_bf16)
    out = tmp_path / "inner.json"
    inner_net.main(["--points", "500", "--n-args", "2", "--repeats", "1", "--rounds", "1", "--out", str(out)])
    record = json.loads(out.read_text())["n_args"]["2"]
    assert set(record["variants"]) == {"eager-fp32", "eager-tf32", "chunked"}
    assert record["failed"] == {"eager-bf16": "RuntimeError: no bf16 here"}


def test_inner_net_sweeps_fused_launches_under_the_interpreter(tmp_path):
    pytest.importorskip("triton")
    out = tmp_path / "inner.json"
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, str(ROOT / "bench" / "inner_net.py"), "--points", "100", "--n-args", "2",
                    "--sweep", "--repeats", "1", "--rounds", "1", "--out", str(out)], check=True, env=env,
                   capture_output=True)
    record = json.loads(out.read_text())
    assert record["triton_interpreter"]
    fused = record["n_args"]["2"]["variants"]["fused-fp32"]
    assert fused["error_vs_fp64"]["output"] < 1e-5 and fused["error_vs_fp64"]["gradients"] < 1e-4
    rows = record["sweep"]["launches"]
    assert len(rows) == 2 * len(set((r["block"], r["warps"], r["programs_per_sm"]) for r in rows)) == 36
    assert sum(r["default"] for r in rows) == 2 and all(r["seconds"] > 0 and r["warm_up_seconds"] > 0 for r in rows)
    # the interpreter compiles nothing, so there are no register counts, but every row has the place for them
    assert all(set(r["kernels"]) == {"forward", "backward"} and "spills" in r["kernels"]["backward"] for r in rows)
    assert {m: b["seconds"] for m, b in record["sweep"]["best"].items()} == {
        m: min(r["seconds"] for r in rows if r["mode"] == m) for m in ("tf32", "bf16")}


@pytest.mark.parametrize("interpreted", [False, True])
def test_precision_records_each_mode_against_float64_and_its_emulation(tmp_path, interpreted):
    if interpreted:
        pytest.importorskip("triton")
    out = tmp_path / "precision.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TRITON_INTERPRET": "1" if interpreted else "0"}
    subprocess.run([sys.executable, str(ROOT / "bench" / "precision.py"), "--points", "512", "--n-args", "1,2",
                    "--hidden", "32", "--seeds", "2", "--out", str(out)], check=True, env=env, capture_output=True)
    record = json.loads(out.read_text())
    assert record["triton_interpreter"] == interpreted and set(record["modes"]) == {"fp32", "tf32", "tf32x3", "bf16"}
    compared = {"emulation_vs_fp64", "kernel_vs_fp64", "kernel_vs_emulation"} if interpreted else {"emulation_vs_fp64"}
    for mode, by_n in record["modes"].items():
        assert set(by_n) == {"1", "2"}
        for r in by_n.values():
            assert compared < set(r) and set(r) - compared == {"flipped_units"}
            fp64 = r["kernel_vs_fp64" if interpreted else "emulation_vs_fp64"]
            exact = mode in ("fp32", "tf32x3")
            assert len(fp64) == 8 and (fp64["output"]["norm"] < 1e-6) == exact
            assert (r["flipped_units"] == 0) == exact  # of 2 x 512 x 32 second-layer units
            if interpreted:
                assert max(e["norm"] for e in r["kernel_vs_emulation"].values()) < 1e-4


def test_kernel_resources_are_read_from_an_sm90_binary_compiled_here(tmp_path):
    pytest.importorskip("triton")
    kernel_resources = pytest.importorskip("kernel_resources")
    out = tmp_path / "resources.json"
    kernel_resources.main(["--n-args", "1", "--modes", "tf32", "--blocks", "32", "--dac", "default", "--out", str(out)])
    record = json.loads(out.read_text())
    rows = record["kernels"]
    assert [(r["block"], r["warps"]) for r in rows] == [(32, 4), (32, 8)]
    for row in rows:
        for kernel in (row["forward"], row["backward"]):
            assert 0 < kernel["registers"] <= 255 and kernel["stack_bytes"] >= 0 and kernel["shared_bytes"] > 0
            assert kernel["programs_per_sm"] == kernel_resources.resident(kernel["registers"], kernel["shared_bytes"],
                                                                          row["warps"]) >= 1
    # the backward kernel holds the weight-gradient accumulators as well: it needs more registers; without them
    # (an attack's gradient to the input) one of its three products goes
    assert all(r["backward"]["registers"] > r["forward"]["registers"] for r in rows)
    assert all(r["input_grad"]["registers"] < r["backward"]["registers"] for r in rows)
    assert all(r["input_grad"]["instructions"]["tensor"] < r["backward"]["instructions"]["tensor"] for r in rows)
    # TF32: the hidden layer's product runs on tensor cores
    assert all(r["forward"]["instructions"]["tensor"] > 0 and r["backward"]["instructions"]["tensor"] > 0 for r in rows)
    (dac,) = record["dac"]
    assert dac["default"] and set(dac) == {"tiles", "default", "forward", "input_grad", "weight_grad"}
    for kernel in (dac[k] for k in ("forward", "input_grad", "weight_grad")):
        assert 0 < kernel["registers"] <= 255 and kernel["programs_per_sm"] >= 1
        mix = kernel["instructions"]  # DAC has no product for tensor cores: all its arithmetic is fp32
        assert mix["tensor"] == 0 and mix["fp32"] > 0 and mix["global_memory"] > 0
        assert sum(v for k, v in mix.items() if k != "total") <= mix["total"]


def test_tf32_operands_reach_the_tensor_cores_unrounded_and_bf16_ones_rounded_to_nearest():
    # what multiarg.precision emulates: TF32 tensor cores read the fp32 bits as they are (dropping the 13 low
    # mantissa bits), tf32x3 rounds its operands' big parts to nearest (ties away), bfloat16 rounds to nearest even
    pytest.importorskip("triton")
    kernel_resources = pytest.importorskip("kernel_resources")
    prefix = {"tf32": None, "tf32x3": "cvt.rna.tf32.f32", "bf16": "cvt.rn.bf16"}
    for mode, expected in prefix.items():
        row = kernel_resources.measure(2, mode, 32, 8, 64)
        for kernel in (row["forward"], row["backward"]):
            assert kernel["instructions"]["tensor"] > 0
            forms = kernel["conversions"]
            assert bool(forms) == (expected is not None)
            assert all(form.startswith(expected) for form in forms)


def test_the_default_dac_tiles_do_not_spill_on_sm90():
    pytest.importorskip("triton")
    kernel_resources = pytest.importorskip("kernel_resources")
    row = kernel_resources.measure_dac(kernel_resources.fused_dac.TILES)
    assert [row[k]["stack_bytes"] for k in ("forward", "input_grad", "weight_grad")] == [0, 0, 0]


def test_dac_layer_times_every_dac_layer_of_the_paper_networks(tmp_path):
    dac_layer = pytest.importorskip("dac_layer")
    from common import load_config, outer_net

    from multiarg.params import forward_flops

    out = tmp_path / "dac.json"
    dac_layer.main(["--batch", "2", "--repeats", "1", "--rounds", "1", "--out", str(out)])
    layers = json.loads(out.read_text())["layers"]
    assert [row["layer"] for row in layers] == [f"cifar10-cnn/{i}" for i in range(1, 5)] + [
        f"mnist-mlp/{i}" for i in range(1, 4)]
    assert [row["input_grad"] for row in layers] == [False, True, True, True, False, True, True]
    for network, (dataset, arch, _) in dac_layer.NETWORKS.items():
        # 4 FLOPs a connection, as the parameter and FLOP tables count them
        model = outer_net(load_config(), dataset, arch, "dac")
        head = 2 * model.head.in_features * model.head.out_features
        per_image = sum(row["connections"] for row in layers if row["layer"].startswith(network)) // 2
        assert 4 * per_image == forward_flops(model.cfg) - head
    for row in layers:
        assert set(row["variants"]) == {"eager"}  # no fused kernel on a CPU
        eager = row["variants"]["eager"]
        assert eager["seconds"] > 0 and max(eager["error_vs_fp64"].values()) < 1e-5


def test_the_default_fp32_launch_does_not_spill_on_sm90():
    # why fp32 launches 32 points on 8 warps (multiarg.fused.LAUNCHES): at 64 x 4 its backward kernel spilled ~13 KB.
    # Under this project's Triton (3.8); the GPU image's 3.6 spills at every fp32 launch (see the README)
    pytest.importorskip("triton")
    kernel_resources = pytest.importorskip("kernel_resources")
    launch = kernel_resources.fused.LAUNCHES["fp32"]
    row = kernel_resources.measure(3, "fp32", launch.block, launch.warps, 64)
    assert row["forward"]["stack_bytes"] == row["backward"]["stack_bytes"] == 0
    # the backward kernel without the weights' terms (attacks) keeps one register on the stack at n = 3 (one STL,
    # one LDL in its SASS under Triton 3.8): noted, not worth a launch of its own
    assert row["input_grad"]["stack_bytes"] <= 8


def test_programs_per_multiprocessor_follow_the_scarcest_resource():
    kernel_resources = pytest.importorskip("kernel_resources")
    assert kernel_resources.resident(255, 68608, 4) == 2  # registers: 8192 a warp, 8 warps of 64 fit
    assert kernel_resources.resident(64, 0, 4) == 8  # 32 warps' worth of registers, 4 warps a program
    assert kernel_resources.resident(32, 120_000, 1) == 1  # shared memory
    assert kernel_resources.resident(16, 0, 1) == 32  # the cap on programs


def test_job_exit_times_both_endings_of_a_job_side_by_side(tmp_path):
    job_exit = pytest.importorskip("job_exit")
    out = tmp_path / "exit.json"
    record = job_exit.main(["--configfile", str(ROOT / "tests" / "configs" / "tiny.yaml"), "--rounds", "1",
                            "--out", str(out)])
    assert json.loads(out.read_text()) == record and record["network"] == "mnist/mlp/arg2"
    for kind in ("train", "evaluate"):
        row = record["kinds"][kind]
        assert set(row) == {"freeze", "collect", "saved_s", "total_freeze_over_collect"}
        for ending in ("freeze", "collect"):
            assert 0 < row[ending]["interpreter"] < row[ending]["total"]
        assert row["saved_s"] == pytest.approx(row["collect"]["total"] - row["freeze"]["total"])


def test_fork_start_runs_a_job_both_ways_with_equal_outputs(tmp_path):
    out = tmp_path / "fork.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "fork_start.py"), "--rounds", "1", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    record = json.loads(out.read_text())
    # the server forks from a single thread: a thread pool started before fork() would be missing in every job
    assert record["outputs_equal"] is True and record["server_threads"] == 1
    assert record["job"] == "pretrain_inner arg2 seed 0" and record["server_preload_s"] > 0
    for way in ("fresh", "forked"):
        assert len(record["seconds"][way]) == 1 and record["median_s"][way] == record["seconds"][way][0] > 0
    assert record["saved_s"] == pytest.approx(record["median_s"]["fresh"] - record["median_s"]["forked"])


def test_a_run_that_benchmarked_no_estimated_rule_is_summarised_without_ratios():
    run_summary = pytest.importorskip("run_summary")
    estimate = {"device": "here", "command": "python bench/estimate_cost.py", "inner_kernel": "eager",
                "epoch_fraction": 1, "rules": {"train_session2": {"jobs": 3, "hours": 0.01}}}
    against = run_summary.against_estimate({}, estimate)  # e.g. Snakemake found nothing to do
    assert against["rules"] == {} and against["total"]["measured_over_predicted"] is None
    assert run_summary._estimate_lines(against)[-1] == "| total |  | 0.0 | 0.0 | — |  |"


def test_keep_run_needs_the_account_it_keeps(tmp_path, capsys):
    run_summary = pytest.importorskip("run_summary")
    with pytest.raises(SystemExit):
        run_summary.main(["--workdir", str(tmp_path), "--keep-run", "--out", str(tmp_path / "none")])
    assert f"--keep-run takes the run's record from {tmp_path / 'none' / 'summary.json'}" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(SystemExit):  # a record to keep, but a run to read as well
        run_summary.main(["--workdir", str(tmp_path), "--keep-run", "--configfile", "x.yaml", "--out", str(tmp_path)])
    assert "and no --log or --configfile" in capsys.readouterr().err


@pytest.mark.e2e
def test_workflow_ab_runs_the_workflow_both_ways_and_finds_the_same_numbers(tmp_path, mirror, monkeypatch):
    import torch

    workflow_ab = pytest.importorskip("workflow_ab")
    monkeypatch.setenv("MULTIARG_DATA_MIRROR", str(mirror))
    out = tmp_path / "js.json"
    record = workflow_ab.main(["--targets", "results/runs/mnist/mlp/arg2/seed0/session2/model.pt", "--rounds", "1",
                               "--keep", str(tmp_path / "runs"), "--out", str(out)])
    assert json.loads(out.read_text()) == record
    assert record["key"] == "job_server" and record["values"] == ["False", "True"]
    (off,), (on,) = record["runs"]["False"], record["runs"]["True"]
    assert off["jobs"] == on["jobs"] == 3 and on["forked_jobs"] == 3 and off["forked_jobs"] == 0
    assert on["server_preload_s"] > 0 and off["server_preload_s"] is None
    assert off["rules"].keys() == on["rules"].keys() == {"train_session2"}  # the rules that run networks
    job = "train_session2/mnist/mlp/arg2/seed0"
    assert list(off["job_seconds"]) == [job] and off["job_seconds"][job] > 0
    assert off["rules"]["train_session2"] == {"jobs": 1, "seconds_total": round(off["job_seconds"][job], 2)}
    # model, checkpoint-free session-II outputs, session I and the data: compared, and equal
    assert record["outputs_equal"] and record["compared_files"] >= 5 and record["differences"] == []
    # the comparison does see a changed number, and only a timing is let through
    runs = tmp_path / "runs"
    a, b = runs / "job_server-False-0" / "results", runs / "job_server-True-0" / "results"
    metrics = b / "runs/mnist/mlp/arg2/seed0/session2/metrics.csv"
    rows = metrics.read_text().splitlines()
    header = rows[0].split(",")
    first = rows[1].split(",")
    first[header.index("seconds")] = "123.0"
    metrics.write_text("\n".join([rows[0], ",".join(first), *rows[2:]]) + "\n")
    assert workflow_ab.differences(a, b)[1] == []
    first[1] = "0.5"
    metrics.write_text("\n".join([rows[0], ",".join(first), *rows[2:]]) + "\n")
    init = b / "init/arg2/seed0.pt"
    session1 = torch.load(init, weights_only=False)
    session1["state_dict"]["net.0.bias"][0] += 1e-6
    torch.save(session1, init)
    found = workflow_ab.differences(a, b)[1]
    assert found == ["init/arg2/seed0.pt/state_dict/net.0.bias",
                     f"runs/mnist/mlp/arg2/seed0/session2/metrics.csv[0]/{header[1]}"]


def test_workflow_ab_sets_each_kind_of_job_side_by_side(tmp_path, capsys):
    workflow_ab = pytest.importorskip("workflow_ab")
    cnn, mlp = "train_session2/cifar10/cnn/arg2", "train_session2/mnist/mlp/arg2"
    runs = {"eager": [{"job_seconds": {f"{cnn}/seed0": 4.0, f"{cnn}/seed1": 6.0, f"{mlp}/seed0": 1.0}},
                      {"job_seconds": {f"{cnn}/seed0": 5.0, f"{cnn}/seed1": 5.0, f"{mlp}/seed0": 3.0}}],
              "chunked": [{"job_seconds": {f"{cnn}/seed0": 2.0, f"{cnn}/seed1": 3.0, f"{mlp}/seed0": 4.0}},
                          {"job_seconds": {f"{cnn}/seed0": 2.5, f"{cnn}/seed1": 2.5, f"{mlp}/seed0": 4.0}}]}
    table = workflow_ab.kinds(runs)
    assert table == {cnn: {"eager": 5.0, "chunked": 2.5, "first_over_second": 2.0},
                     mlp: {"eager": 2.0, "chunked": 4.0, "first_over_second": 0.5}}
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"values": ["eager", "chunked"], "runs": runs}))
    capsys.readouterr()
    workflow_ab.main(["--summary", str(record)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [mlp, "2.00", "4.00", "0.50"] and lines[2].split() == [cnn, "5.00", "2.50", "2.00"]


def test_workflow_ab_takes_two_different_values(capsys):
    workflow_ab = pytest.importorskip("workflow_ab")
    for values in ("eager", "eager,eager", "a,b,c"):
        with pytest.raises(SystemExit):
            workflow_ab.main(["--key", "inner_kernel", "--values", values])
        assert "two different values" in capsys.readouterr().err


def test_concurrency_times_each_variant_on_one_and_two_processes_and_survives_missing_mps(tmp_path, monkeypatch):
    concurrency = pytest.importorskip("concurrency")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no nvidia-cuda-mps-control, whatever the machine
    out = tmp_path / "concurrency.json"
    concurrency.main(["--settings", "mnist-mlp", "--activations", "relu,bogus", "--processes", "2,1",
                      "--mps", "off,on", "--batch", "4", "--seconds", "0.05", "--rounds", "1", "--out", str(out)])
    record = json.loads(out.read_text())
    assert "nvidia-cuda-mps-control" in record["mps_failed"]["on"] and "on" not in record["mps"]
    off = record["mps"]["off"]
    assert set(off["failed"]) == {"mnist-mlp:bogus"}  # every worker's error, once
    row = off["variants"]["mnist-mlp:relu"]
    assert row["variant"] == "relu/eager" and list(row["processes"]) == ["1", "2"]
    steps = row["steps_per_burst"]
    for count, burst in row["processes"].items():
        assert burst["finite_loss"]
        assert burst["steps_per_second"] == pytest.approx(int(count) * steps / burst["wall_seconds"])
        assert 0 < burst["step_seconds"] <= burst["wall_seconds"] / steps * 1.001
    assert row["processes"]["1"]["vs_one"] == 1.0
    assert record["device"] and record["torch"]


def test_mps_is_chosen_only_if_it_ran_every_variant_faster_at_the_most_processes():
    concurrency = pytest.importorskip("concurrency")

    def state(rates):
        return {"variants": {name: {"processes": {str(c): {"steps_per_second": r} for c, r in by_count.items()}}
                             for name, by_count in rates.items()}}

    off = state({"a": {1: 100, 8: 400}, "b": {1: 10, 8: 40}})
    faster = state({"a": {1: 100, 8: 600}, "b": {1: 10, 8: 44}})
    chosen, lines = concurrency.verdict({"mps": {"off": off, "on": faster}})
    assert chosen and lines == ["a: 8 processes, MPS x1.50", "b: 8 processes, MPS x1.10"]
    slower_at_most = state({"a": {1: 200, 8: 600}, "b": {1: 20, 8: 43}})  # faster alone, not where it counts
    assert not concurrency.verdict({"mps": {"off": off, "on": slower_at_most}})[0]
    assert not concurrency.verdict({"mps": {"off": off}})[0]  # MPS failed: not chosen


def test_the_readmes_performance_table_is_what_the_committed_records_give():
    performance = pytest.importorskip("performance")
    from readme_block import read_block

    assert read_block(performance.MARKERS) == performance.table("cuda")


def _record(tmp_path, name, content):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_performance_judges_each_target_from_its_record(tmp_path):
    performance = pytest.importorskip("performance")
    _record(tmp_path, "inner_net-cuda.json", {"points": 7_864_320, "n_args": {"2": {"variants": {
        "eager-tf32": {"tflops": 11.0}, "fused-tf32": {"tflops": 160.0}, "fused-bf16": {"tflops": None}}}}})
    step = {"seconds": 0.004, "peak_bytes": 300}
    _record(tmp_path, "train_step-cuda.json", {"settings": {
        "cifar10-cnn": {"batch": 128, "variants": {"relu/eager": {"seconds": 0.003, "peak_bytes": 200},
                                                   "arg2/eager": {"seconds": 0.040, "peak_bytes": 9000},
                                                   "arg2/fused-tf32": step, "gamma/eager": {"seconds": 0.001}}},
        "mnist-mlp": {"batch": 128, "variants": {"relu/eager": {"seconds": 0.001, "peak_bytes": 100},
                                                 "arg2/fused-tf32": step}}}})
    _record(tmp_path, "estimate-cuda-fused-tf32.json", {"hours_total": 5.5, "configfile": "config.yaml",
                                                         "inner_kernel": "fused-tf32", "device": "H100",
                                                         "epoch_fraction_within": {"hours": 6.0, "fraction": 1.0}})
    _record(tmp_path, "quick-cuda/summary.json", {"run": {"elapsed_seconds": 400, "complete": True, "failed": {}},
                                                  "environment": {"device": "NVIDIA H200"}})

    def errors(output, gradient):
        smaller = {t: {"norm": gradient / 2} for t in ("x", "W1", "b1", "W2")}
        return {"kernel_vs_fp64": {"output": {"norm": output}, **smaller,
                                   **{t: {"norm": gradient} for t in ("b2", "W3", "b3")}}}

    _record(tmp_path, "precision-cuda-interpreted.json", {"modes": {  # a GPU's own record would win over this name
        "tf32": {"1": errors(1e-3, 0.05), "3": errors(2.9e-3, 0.1)}, "bf16": {"2": errors(1e-3, 0.31)}}})
    lines = performance.table("cuda", tmp_path).splitlines()
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines if line.startswith("|")]
    rows = {row[0]: row[1:] for row in cells[2:]}
    inner, = (cells for label, cells in rows.items() if label.startswith("inner net"))
    assert inner[0] == "eager-tf32 11, fused-tf32 160" and inner[2] == "met"
    precision = {label.split()[1]: cells for label, cells in rows.items() if "relative error" in label}
    assert precision["tf32"][:3] == ["0.0029 / 0.1", "≤ 0.003 / ≤ 0.15", "met"]  # worst over n and tensors
    assert precision["bf16"][2] == "not met" and precision["tf32x3"][2] == "not measured"
    cnn_time, cnn_memory, mlp_time, mlp_memory = [row for label, row in rows.items() if "compiled" not in label
                                                  and ("training step" in label or "memory" in label)]
    # the fastest 2-arg variant (fused, not eager) against ReLU; gamma is neither
    assert cnn_time[2] == "met (×1.33)" and "gamma" not in cnn_time[0]
    assert cnn_memory[0] == "×1.50" and cnn_memory[2] == "met (×1.50)"
    assert mlp_time[2] == "not met (×4.00)" and mlp_memory[2] == "not met (×3.00)"
    assert [r[2] for k, r in rows.items() if "compiled" in k] == ["not measured"] * 4  # no compile record
    estimate, quick = rows["paper-scale `snakemake all`, estimated (upper bound)"], rows["whole DAG at GPU quick scale"]
    assert estimate[:3] == ["5.50 h (fused-tf32, H100); ≤ 6 h if training runs average ≤ 1 of their maximum epochs",
                            "≤ 6 device-hours", "met"]
    assert quick == ["6.7 min", "≤ 8 min", "met", "quick-cuda/summary.json"]
    assert lines[-1] == "Records made on: H100, NVIDIA H200."  # a summary names its device in its environment
    # an estimate of another config, or a run with failed jobs, judges nothing
    _record(tmp_path, "estimate-cuda-fused-tf32.json", {"hours_total": 0.1, "configfile": "workflow/configs/demo.yaml"})
    _record(tmp_path, "quick-cuda/summary.json", {"run": {"elapsed_seconds": 300, "complete": True,
                                                          "failed": {"autoattack": 1}}})
    text = performance.table("cuda", tmp_path)
    assert "not paper scale) | ≤ 6 device-hours | not measured" in text
    assert "5.0 min (incomplete or with failed jobs) | ≤ 8 min | not measured" in text
    _record(tmp_path, "estimate-cuda-fused-tf32.json", {"hours_total": 9.0, "configfile": "config.yaml",
                                                         "epoch_fraction_within": {"hours": 6.0, "fraction": None}})
    assert "; over 6 h even without training | ≤ 6 device-hours | not met" in performance.table("cuda", tmp_path)


def test_compare_fits_counts_sign_changes_per_kind_and_medians_by_the_second_runs_sign(tmp_path):
    compare_fits = pytest.importorskip("compare_fits")
    from scipy import stats

    head = "kind,dataset,arch,seed,curvature_normalised,sign\n"
    (tmp_path / "a.csv").write_text(head + "learned,mnist,mlp,0,-0.4,negative\nlearned,mnist,mlp,1,-0.1,negative\n"
                                    "learned,mnist,mlp,2,0.1,positive\nxavier-init,mnist,mlp,0,0.3,positive\n")
    (tmp_path / "b.csv").write_text(head + "learned,mnist,mlp,0,-0.5,negative\nlearned,mnist,mlp,1,0.2,positive\n"
                                    "learned,mnist,mlp,2,0.4,positive\nlearned,mnist,mlp,3,0.9,positive\n")
    first, second = (compare_fits.read_fits(tmp_path / name) for name in ("a.csv", "b.csv"))
    result = compare_fits.compare(first, second)
    assert list(result) == ["learned"]  # seed 3 and the Xavier row are in one file only
    learned = result["learned"]
    assert (learned["n"], learned["same_sign"], learned["changes"]) == (3, 2, [(1, "negative", "positive")])
    assert learned["curvature"] == {"negative": (1, -0.4, -0.5),
                                    "positive": (2, pytest.approx(0.0), pytest.approx(0.3))}
    assert (learned["to_negative"], learned["to_positive"], learned["mcnemar_p_two_sided"]) == (0, 1, 1.0)
    moved = learned["curvature_difference"]  # second minus first, seeds 0, 1, 2: -0.1, +0.3, +0.3
    assert moved["diff"] == pytest.approx(0.5 / 3) and moved["p"] == pytest.approx(
        stats.ttest_rel([-0.5, 0.2, 0.4], [-0.4, -0.1, 0.1]).pvalue)
    assert "1: negative -> positive" in compare_fits.markdown(result, "a", "b")
    out = compare_fits.main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "c.json")])
    assert json.loads((tmp_path / "c.json").read_text())["learned"]["same_sign"] == out["learned"]["same_sign"] == 2


def test_the_findings_tables_are_what_the_committed_accounts_give():
    overview = pytest.importorskip("claims_overview")
    from readme_block import FINDINGS, read_block

    assert read_block(overview.INDEX_MARKERS, FINDINGS) == overview.index()
    assert read_block(overview.MARKERS, FINDINGS) == overview.table()


def test_the_accounts_index_gives_each_runs_config_edges_device_and_curvature(tmp_path):
    overview = pytest.importorskip("claims_overview")
    from multiarg.tables import write_table

    def account(name, configfile, command, curvature, complete=True, device="AMD EPYC"):
        folder = tmp_path / name
        write_table([{"claim": "c", "vs_paper": "", "p": ""}], folder / "tables" / "claims.csv")
        write_table([{"kind": kind, "arch": arch, "dataset": dataset, "k_negative": k, "n": n}
                     for kind, arch, dataset, k, n in curvature], folder / "tables" / "curvature_tests.csv")
        (folder / "summary.json").write_text(json.dumps({"configfile": configfile, "environment": {"device": device},
                                                         "run": {"command": command, "finished": {"train": 3, "all": 1},
                                                                 "complete": complete, "elapsed_seconds": 1740}}))

    account("mnist-run", "workflow/configs/mnist-mlp-wrap.yaml", "snakemake --cores 2 all --configfile x.yaml",
            [("learned", "mlp", "all", 10, 24), ("start", "mlp", "all", 11, 24), ("learned", "mlp", "mnist", 9, 9),
             ("learned", "all", "all", 10, 24)])
    account("cifar10-run", "workflow/configs/cifar10-mlp.yaml",
            "snakemake all --config cpu_isa=avx2 inner_kernel=chunked --cores 2", [("learned", "mlp", "all", 17, 24)],
            complete=False, device="x86_64")
    lines = overview.index(tmp_path).splitlines()
    assert lines[2] == ("| [`mnist-run`](bench/results/mnist-run/summary.md) | `mnist-mlp-wrap.yaml` | — | wrap | "
                        "AMD EPYC | 4 | 29 min | MLP 11 → 10/24 |")
    assert lines[3] == ("| [`cifar10-run`](bench/results/cifar10-run/summary.md) | `cifar10-mlp.yaml` | "
                        "`cpu_isa=avx2` `inner_kernel=chunked` | reflect | x86_64 | 4 (incomplete) | 29 min | "
                        "MLP 17/24 |")


def test_the_claims_overview_sets_each_runs_verdict_side_by_side(tmp_path):
    overview = pytest.importorskip("claims_overview")
    from multiarg.tables import write_table

    def claim(name, vs, p, p_holm="", paper_value="", where=""):
        return {"claim": name, "vs_paper": vs, "p": p, "p_holm": p_holm, "paper_value": paper_value,
                "paper_in_ci95": where}

    write_table([claim("curvature", "contradicts", "0.00661", "0.0727", "0.2917", "outside"),
                 claim("session III", "agrees (not significant, as in the paper); leans the other way", "0.2")],
                tmp_path / "mnist-run" / "tables" / "claims.csv")
    write_table([claim("curvature", "not shown (not significant here)", "0.5", "", "0.2917", "inside"),
                 claim("robust", "", "")],
                tmp_path / "demo-run" / "tables" / "claims.csv")
    lines = overview.table(tmp_path).splitlines()
    assert lines[0] == "| claim | runs | `mnist-run` | `demo-run` |"  # the demo last, and left out of the tally
    assert lines[2] == ("| curvature | 1 contradicts | **contradicts**, p = 0.00661 (Holm 0.0727); paper's 0.2917 "
                        "outside the 95% interval | not shown, p = 0.5 |")
    assert lines[3] == "| session III | 1 agrees (n.s.) | agrees (n.s.; leans the other way), p = 0.2 | — |"
    assert lines[4] == "| robust | — | — | n/a |"
    assert overview.cell({"vs_paper": "not shown (no sign changed)", "p": "", "p_holm": ""}) == (
        "not shown (no sign changed)")
    verdicts = ["agrees", "agrees", "contradicts", "", "not shown (not significant here)",
                "agrees (not significant, as in the paper)", "agrees (not significant, as in the paper)"]
    assert overview.tally([{"vs_paper": v} for v in verdicts]) == (
        "2 agree · 2 agree (n.s.) · 1 contradicts · 1 not shown · 1 n/a")


def _curvature_row(kind, dataset, k, n, to=("", ""), arch="cnn"):
    """A row of an account's tables/curvature_tests.csv."""
    return {"kind": kind, "arch": arch, "dataset": dataset, "k_negative": k, "n": n, "n_flat": 0,
            "to_negative": to[0], "to_positive": to[1]}


def _fit_row(kind, dataset, seed, curvature, arch="cnn"):
    """A row of an account's tables/fits.csv."""
    sign = "negative" if curvature < 0 else "positive" if curvature > 0 else "flat"
    return {"kind": kind, "dataset": dataset, "arch": arch, "seed": seed, "curvature": curvature,
            "curvature_normalised": curvature, "sign": sign}


def test_pooled_curvature_tests_by_seed_and_refuses_a_dataset_counted_twice(tmp_path):
    """A seed's nets on two datasets grew from one session-I net: pooled, each seed is one unit."""
    pool_curvature = pytest.importorskip("pool_curvature")
    from scipy import stats

    from multiarg.analysis import sign_flip_test
    from multiarg.tables import write_table

    fit = _fit_row
    old = [-0.5, -0.4, -0.3, -0.2, -0.1, 0.2]  # CIFAR-10, seeds 0-5, made before the start rows existed
    write_table([fit("learned", "cifar10", s, c) for s, c in enumerate(old)], tmp_path / "old" / "tables" / "fits.csv")
    starts, moved = [-0.5, -0.2, 0.1], [0.1, 0.3, 0.2]  # MNIST, seeds 0-2; moved: learned minus start
    write_table([fit("start", "mnist", s, c) for s, c in enumerate(starts)] + [fit("xavier-init", "mnist", 0, 0.9)]
                + [fit("learned", "mnist", s, c + d) for s, (c, d) in enumerate(zip(starts, moved))],
                tmp_path / "new" / "tables" / "fits.csv")
    result = pool_curvature.main([str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(tmp_path / "p.json")])
    learned = result["learned"]
    assert (learned["k"], learned["n"], learned["n_starts"]) == (6, 9, 6)
    # seed 0 negative on both datasets (+2), seeds 1 and 2 once each way (0), 3 and 4 negative (+1), 5 positive (-1)
    assert learned["p_two_sided"] == pytest.approx(sign_flip_test([2, 0, 0, 1, 1, -1])["p_two_sided"])
    assert result["start"]["datasets"] == ["mnist"] and result["start"]["k"] == 2
    assert (result["changes"]["to_negative"], result["changes"]["to_positive"]) == (0, 1)
    t = stats.ttest_1samp(moved, 0.0)  # only the new account's learned functions have starts to pair with
    shift = result["curvature_change"]
    assert shift["pairs"] == 3 and shift["diff"] == pytest.approx(0.2) and shift["p"] == pytest.approx(t.pvalue)
    line = stats.linregress(starts, np.add(starts, moved))
    assert result["start_dependence"]["slope"]["estimate"] == pytest.approx(line.slope)
    assert result["start_dependence"]["intercept"]["estimate"] == pytest.approx(line.intercept)
    assert json.loads((tmp_path / "p.json").read_text())["datasets"] == {"cifar10": str(tmp_path / "old"),
                                                                         "mnist": str(tmp_path / "new")}
    tied = pool_curvature.pool([tmp_path / "old", tmp_path / "new"], "cnn", ridge_tolerance=0.15)
    # CIFAR-10's seed 4 (-0.1) and MNIST's seed 1 (+0.1) are ridges now: 5 of 7 negative
    assert (tied["learned"]["k"], tied["learned"]["n"], tied["ridge_tolerance"]) == (5, 7, 0.15)
    with pytest.raises(SystemExit, match="cnn on mnist is in both"):
        pool_curvature.main([str(tmp_path / "new"), str(tmp_path / "new"), "--out", str(tmp_path / "q.json")])


def test_contrast_curvature_pairs_the_pools_nets_by_dataset_and_seed(tmp_path):
    contrast_curvature = pytest.importorskip("contrast_curvature")
    from scipy import stats

    from multiarg.tables import write_table

    starts = {"cnn": [-0.4, -0.1, 0.25, 0.3, -0.2]}
    starts["mlp"] = [s + 0.01 * i for i, s in enumerate(starts["cnn"])]  # the same nets over other inputs
    learned = {"cnn": [s - 0.2 for s in starts["cnn"]], "mlp": [0.5 * s + 0.12 for s in starts["cnn"]]}
    learned["cnn"][0] += 0.05  # not a perfect line: a residual variance to test with
    for arch in ("cnn", "mlp"):
        write_table([_fit_row("start", "mnist", i, c, arch) for i, c in enumerate(starts[arch])]
                    + [_fit_row("learned", "mnist", i, c, arch) for i, c in enumerate(learned[arch])],
                    tmp_path / arch / "tables" / "fits.csv")
    result = contrast_curvature.main(["--pool", "cnn", str(tmp_path / "cnn"), "--pool", "mlp", str(tmp_path / "mlp"),
                                      "--out", str(tmp_path / "c.json")])
    # signs: CNN - - + + -, MLP - + + + +: seeds 1 and 4 differ, the CNN's negative both times
    ended = result["learned"]
    assert (ended["pairs"], ended["first_only_negative"], ended["second_only_negative"]) == (5, 2, 0)
    assert ended["p_two_sided"] == pytest.approx(stats.binomtest(2, 2).pvalue)
    gap = np.subtract(learned["cnn"], learned["mlp"])
    assert ended["curvature_difference"]["p"] == pytest.approx(stats.ttest_1samp(gap, 0.0).pvalue)
    assert result["start"]["first_only_negative"] == result["start"]["second_only_negative"] == 0
    line = stats.linregress(np.subtract(starts["cnn"], starts["mlp"]), gap)
    assert result["start_adjusted"]["intercept"]["estimate"] == pytest.approx(line.intercept)
    assert [p["learned"]["k"] for p in json.loads((tmp_path / "c.json").read_text())["pools"]] == [3, 1]
    with pytest.raises(SystemExit):
        contrast_curvature.main(["--pool", "cnn", str(tmp_path / "cnn"), "--out", str(tmp_path / "d.json")])
    write_table([_fit_row("learned", "cifar10", 0, -0.5)], tmp_path / "old" / "tables" / "fits.csv")
    with pytest.raises(SystemExit, match="session-I start fits"):  # an account made before the start test
        contrast_curvature.contrast([("cnn", [tmp_path / "old"]), ("mlp", [tmp_path / "mlp"])])


def test_start_curvature_describes_the_maps_of_every_edge_mode():
    start_curvature = pytest.importorskip("start_curvature")
    rows = {r["boundary"]: r for r in start_curvature.map_statistics([3.0], radius=2.0, draws=6)}
    assert set(rows) == set(start_curvature.BOUNDARIES)
    assert all(0 <= r["fraction_negative"] <= 1 and 0 <= r["plane_r2_median"] <= 1 for r in rows.values())
    assert rows["wrap"]["plane_r2_median"] < 0.5 < 0.95 < rows["reflect"]["plane_r2_median"]
    assert rows["wrap"]["interaction_share_median"] < 1e-4 < rows["reflect"]["interaction_share_median"]


def test_start_curvature_tests_a_records_fits_again_without_its_run_folders(tmp_path):
    start_curvature = pytest.importorskip("start_curvature")
    from scipy import stats

    starts, learned = [-0.5, -0.4, 0.2, -0.3], [-0.2, -0.3, -0.1, 0.3]  # 1 of each sign change, all moving up but one
    by_seed = [{"setting": "mnist/mlp", "seed": s, "start_sign": int(np.sign(a)), "learned_sign": int(np.sign(b)),
                "start_curvature_normalised": a, "learned_curvature_normalised": b}
               for s, (a, b) in enumerate(zip(starts, learned))]
    record = {"command": "python bench/start_curvature.py --runs r=/gone",
              "maps": [{"boundary": "wrap", "sigma_cells": 3.0, "fraction_negative": 0.5}],
              "runs": [{"label": "r", "folder": "/gone", "by_seed": by_seed}]}  # made before runs kept their epoch
    (tmp_path / "old.json").write_text(json.dumps(record))
    result = start_curvature.main(["--from", str(tmp_path / "old.json"), "--out", str(tmp_path / "new.json")])
    (run,) = result["runs"]
    assert (run["start_negative"], run["learned_negative"], run["epoch"]) == (3, 3, "best")
    assert (run["negative_to_positive"], run["positive_to_negative"], run["mcnemar_p_two_sided"]) == (1, 1, 1.0)
    t = stats.ttest_rel(learned, starts)
    shift = run["curvature_change"]
    assert shift["diff"] == pytest.approx(0.175) and shift["p"] == pytest.approx(t.pvalue)
    assert run["start_dependence"]["slope"]["estimate"] == pytest.approx(stats.linregress(starts, learned).slope)
    assert result["maps"] == record["maps"] and result["measured_by"] == record["command"]
    assert json.loads((tmp_path / "new.json").read_text())["command"].startswith("python ")


@pytest.mark.parametrize("name", ["curvature_overview", "accuracy_overview", "ridge_ties", "xavier_pairs"])
def test_a_record_drawn_from_the_accounts_is_what_the_committed_accounts_give(name):
    overview = pytest.importorskip(name)

    committed = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())
    assert committed["rows"] == overview.rows()


def _account(folder, tables: dict, configfile="workflow/configs/mnist-mlp-wrap.yaml", values=None):
    """A run account as the overview scripts read it: its tables, its config and, if given, its seeds' values."""
    from multiarg.tables import write_table

    for name, rows in {"claims": [{"claim": "c"}], **tables}.items():
        write_table(rows, folder / "tables" / f"{name}.csv")
    (folder / "summary.json").write_text(json.dumps({"configfile": configfile}))
    if values:
        (folder / "tables" / "summary_values.json").write_text(json.dumps(values))


def test_ridge_ties_count_each_accounts_signs_with_ridges_tied(tmp_path):
    ridge_ties = pytest.importorskip("ridge_ties")
    from multiarg.analysis import binomial_test

    curvatures = [-0.5, -0.3, -0.01, 0.015, 0.04, 0.2, 0.0]
    fits = [_fit_row("learned", "mnist", s, c, arch="mlp") for s, c in enumerate(curvatures)]
    # tied by the account's own tolerance, which the sign column no longer shows: its curvature's sign votes
    fits.append({**_fit_row("learned", "mnist", 7, -0.03, arch="mlp"), "sign": "ridge", "curvature": -0.002})
    fits.append(_fit_row("xavier-init", "mnist", 0, 0.3, arch="mlp"))  # neither learned nor a start: not counted
    # seeds 0-3's starts: two turn negative, and the ridges of seeds 2 and 3 turned each way until they are tied
    fits += [_fit_row("start", "mnist", s, c, arch="mlp") for s, c in enumerate([0.3, 0.3, 0.3, -0.3])]
    _account(tmp_path / "a-cpu", {"fits": fits})
    _account(tmp_path / "demo-cpu", {"fits": fits[:1]})
    record = ridge_ties.main(["--results", str(tmp_path), "--out", str(tmp_path / "r.json")])
    rows = {r["kind"]: r for r in record["rows"]}
    assert list(rows) == ["learned", "start", "change"] and {r["account"] for r in rows.values()} == {"a-cpu"}
    got = [(t["tolerance"], t["k"], t["n"], t["n_ridge"]) for t in rows["learned"]["tests"]]
    assert got == [(0.0, 4, 7, 0), (0.02, 3, 5, 2), (0.05, 2, 3, 4)]
    assert rows["learned"]["tests"][1]["p_two_sided"] == float(f"{binomial_test(3, 5)['p_two_sided']:.4g}")
    assert [(t["to_negative"], t["to_positive"]) for t in rows["change"]["tests"]] == [(3, 1), (2, 0), (2, 0)]
    assert not any(r["crosses_0.05"] for r in rows.values())
    assert json.loads((tmp_path / "r.json").read_text()) == record
    with pytest.raises(SystemExit, match="lie in"):
        ridge_ties.main(["--results", str(tmp_path), "--tolerances", "0,0.5", "--out", str(tmp_path / "s.json")])


def test_ridge_ties_record_no_p_where_no_sign_changed(tmp_path):
    """McNemar's test has nothing to test when every learned net kept its start's sign: the record holds null, which
    JSON, unlike NaN, reads back equal to what was written."""
    ridge_ties = pytest.importorskip("ridge_ties")
    fits = [_fit_row(kind, "mnist", seed, c) for kind in ("learned", "start") for seed, c in enumerate([-0.4, 0.3])]
    _account(tmp_path / "a-cpu", {"fits": fits})
    record = ridge_ties.main(["--results", str(tmp_path), "--out", str(tmp_path / "r.json")])
    change = next(r for r in record["rows"] if r["kind"] == "change")
    assert [(t["to_negative"], t["to_positive"], t["p_two_sided"]) for t in change["tests"]] == [(0, 0, None)] * 3
    assert not change["crosses_0.05"]
    assert json.loads((tmp_path / "r.json").read_text()) == record == {**record, "rows": ridge_ties.rows(tmp_path)}


def test_xavier_pairs_set_welch_beside_the_paired_test_of_each_net_before_and_after(tmp_path):
    xavier_pairs = pytest.importorskip("xavier_pairs")
    from scipy import stats

    trained, init = [0.90, 0.95, 0.97, 0.93], [0.80, 0.86, 0.90, 0.82]
    fits = ([{**_fit_row("xavier-trained", "mnist", s, 0.3, arch="mlp"), "r2": r2} for s, r2 in enumerate(trained)]
            + [{**_fit_row("xavier-init", "mnist", s, 0.3, arch="mlp"), "r2": r2} for s, r2 in enumerate(init)]
            + [{**_fit_row("xavier-init", "mnist", 4, 0.0, arch="mlp"), "r2": 1.0}])  # flat: left out
    _account(tmp_path / "a-cpu", {"fits": fits})
    _account(tmp_path / "b-cpu", {"fits": fits[:2] + fits[4:6]})  # two pairs: too few to test
    record = xavier_pairs.main(["--results", str(tmp_path), "--out", str(tmp_path / "x.json")])
    (row,) = record["rows"]
    assert (row["account"], row["pairs"], row["verdict_differs"]) == ("a-cpu", 4, False)
    assert row["paired_p"] == float(f"{stats.ttest_rel(trained, init).pvalue:.4g}")
    assert row["welch_p"] == float(f"{stats.ttest_ind(trained, init, equal_var=False).pvalue:.4g}")
    assert row["correlation"] == round(float(np.corrcoef(trained, init)[0, 1]), 3)


def test_the_curvature_overview_takes_starts_from_the_account_or_a_record_of_the_same_run(tmp_path):
    curvature_overview = pytest.importorskip("curvature_overview")
    from multiarg.analysis import binomial_test

    def account(name, rows, configfile="workflow/configs/mnist-mlp-wrap.yaml"):
        _account(tmp_path / name, {"curvature_tests": rows}, configfile)

    row = partial(_curvature_row, arch="mlp")
    account("new-cpu", [row("learned", "mnist", 10, 24), row("start", "mnist", 11, 24), row("learned", "all", 10, 24)])
    account("old-cpu", [row("learned", "cifar10", 17, 24)], "workflow/configs/cifar10-mlp.yaml")
    account("other-cpu", [row("learned", "cifar10", 14, 24)], "workflow/configs/cifar10-mlp.yaml")
    account("demo-cpu", [row("learned", "mnist", 4, 4)])
    (tmp_path / "start_curvature-cpu.json").write_text(json.dumps({"runs": [
        {"label": "old", "n": 24, "start_negative": 23, "learned_negative": 17},
        {"label": "other", "n": 24, "start_negative": 21, "learned_negative": 16}]}))  # not the account's run
    record = curvature_overview.main(["--results", str(tmp_path), "--out", str(tmp_path / "o.json")])
    got = {r["account"]: r for r in record["rows"]}
    assert list(got) == ["new-cpu", "old-cpu", "other-cpu"]  # the demo tests nothing
    assert (got["new-cpu"]["edges"], got["old-cpu"]["edges"]) == ("wrap", "reflect")
    assert got["new-cpu"]["start"]["k"] == 11 and got["old-cpu"]["start"]["k"] == 23
    assert got["other-cpu"]["start"] is None
    test = binomial_test(10, 24)
    assert got["new-cpu"]["learned"] == {"k": 10, "n": 24, "fraction": round(10 / 24, 4),
                                         "ci95": [round(test["ci_low"], 4), round(test["ci_high"], 4)]}
    assert json.loads((tmp_path / "o.json").read_text()) == record
    assert (tmp_path / "o.pdf").stat().st_size > 0 and (tmp_path / "o.png").stat().st_size > 0


def test_the_accuracy_overview_uses_the_seeds_values_where_an_account_keeps_them(tmp_path):
    accuracy_overview = pytest.importorskip("accuracy_overview")
    from multiarg.tables import welch_difference, welch_from_summary

    def summary(name, rows, values=None):
        _account(tmp_path / name, {"summary": [{"dataset": "mnist", "arch": "mlp", "activation": a, "seeds": n,
                                                "test_acc": m, "test_acc_sd": sd, "early_acc": "",
                                                "early_acc_sd": ""} for a, n, m, sd in rows]},
                 values=values and {f"mnist/mlp/{a}": {"test_acc": v} for a, v in values.items()})

    seeds = {"arg2": [97.1, 97.3, 97.2], "relu-flops": [97.6, 97.8, 97.7]}
    summary("new-cpu", [("arg2", 3, "97.20", "0.10"), ("relu-flops", 3, "97.70", "0.10")], seeds)
    summary("old-cpu", [("arg2", 4, "97.15", "0.10"), ("relu", 4, "96.44", "0.22"), ("arg1", 1, "97.00", "")])
    summary("demo-cpu", [("arg2", 2, "41.33", "2.00"), ("relu", 2, "47.00", "1.00")])
    record = accuracy_overview.main(["--results", str(tmp_path), "--out", str(tmp_path / "a.json")])
    new, old = record["rows"]  # one metric each (no early accuracy), no 1-seed arg1, no demo
    exact = welch_difference(seeds["arg2"], seeds["relu-flops"])
    assert (new["account"], new["baseline"], new["from"]) == ("new-cpu", "relu-flops", "seeds")
    assert new["diff"] == round(exact["diff"], 2) and new["ci95"] == [round(exact["ci_low"], 2),
                                                                      round(exact["ci_high"], 2)]
    printed = welch_from_summary(97.15, 0.10, 4, 96.44, 0.22, 4)
    assert (old["account"], old["baseline"], old["from"]) == ("old-cpu", "relu", "summary")
    assert old["diff"] == 0.71 and old["p"] == float(f"{printed['p']:.3g}")
    assert (tmp_path / "a.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="nothing to draw: no run account under"):
        accuracy_overview.main(["--results", str(tmp_path / "empty"), "--out", str(tmp_path / "e.json")])
    assert not (tmp_path / "e.json").exists()


def test_account_figures_are_stored_as_palettes_a_third_of_their_size(tmp_path):
    """A device call sends the whole working tree (64 MiB with the wheels and data): accounts keep compact PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    compact_figures = pytest.importorskip("compact_figures")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.imshow(np.outer(np.linspace(-1, 1, 200), np.linspace(-1, 1, 200)), cmap="RdBu_r")
    ax.plot([0, 199], [0, 199], color="k")
    fig.savefig(tmp_path / "fig.png", dpi=150)
    plt.close(fig)
    full = (tmp_path / "fig.png").stat().st_size
    with Image.open(tmp_path / "fig.png") as image:
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    compact_figures.main([str(tmp_path / "fig.png")])
    with Image.open(tmp_path / "fig.png") as image:
        assert image.mode == "P" and np.asarray(image.convert("RGB")).shape == pixels.shape
        assert np.abs(np.asarray(image.convert("RGB"), dtype=float) - pixels).mean() < 2  # of 255
    once = (tmp_path / "fig.png").read_bytes()
    assert len(once) < full / 2
    compact_figures.main([str(tmp_path / "fig.png")])
    assert (tmp_path / "fig.png").read_bytes() == once  # a palette is left as it is
