"""Pinning the CPU instruction set of PyTorch's kernels (``cpu_isa``), and the benchmark of what it changes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from multiarg.jobserver import ENV as JOB_SERVER
from multiarg.runtime import CPU_ISAS, pin_cpu_isa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
HAS_AVX2 = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
PINNED = {k for isa in CPU_ISAS.values() for k in isa}


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in PINNED and k != JOB_SERVER}


def test_in_process_a_pin_the_environment_lacks_is_an_error_and_auto_changes_nothing(monkeypatch):
    for name in PINNED:
        monkeypatch.delenv(name, raising=False)
    pin_cpu_isa("auto", None)
    with pytest.raises(RuntimeError, match="needs .*ATEN_CPU_CAPABILITY.* in the environment before PyTorch"):
        pin_cpu_isa("avx2", None)


def test_a_cpu_without_the_set_is_named_in_the_error(monkeypatch):
    for name, value in CPU_ISAS["avx512"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    with pytest.raises(RuntimeError, match=r"cpu_isa 'avx512': this CPU \(.+\) runs PyTorch's AVX2 kernels at best"):
        pin_cpu_isa("avx512", None)


@pytest.mark.skipif(not HAS_AVX2, reason="an x86 CPU with AVX2")
def test_a_job_started_without_the_variables_restarts_itself_with_them(tmp_path):
    out = tmp_path / "init.pt"
    done = subprocess.run([sys.executable, "-m", "multiarg", "--threads", "1", "--cpu-isa", "avx2", "pretrain",
                           "--activation", "arg2", "--seed", "0", "--out", str(out), "--steps", "20",
                           "--inner-hidden", "8"], env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PyTorch kernels AVX2" in done.stderr and out.exists()
    assert done.stderr.count("command: python -m multiarg") == 1  # the restart runs before the log starts


@pytest.mark.skipif(not HAS_AVX2, reason="an x86 CPU with AVX2")
def test_the_benchmark_finds_scalar_kernels_change_a_training_run_and_auto_changes_nothing(tmp_path, mnist_pt):
    cpu_isa = pytest.importorskip("cpu_isa")
    job = ["python", "-m", "multiarg", "--threads", "1", "--cpu-isa", "auto", "train", "--session", "2", "--data",
           str(mnist_pt), "--dataset", "mnist", "--activation", "relu", "--seed", "0", "--out-dir", "unused",
           "--max-epochs", "2", "--batch-size", "32", "--val-size", "100", "--train-limit", "300",
           "--test-limit", "100", "--device", "cpu", "--arch", "mlp", "--widths", "128,128", "--layernorm", "true"]
    log = tmp_path / "seed0.log"
    log.write_text("multiarg: forked\n2026-01-01 00:00:00,000 INFO root: command: " + " ".join(job) + "\n")
    out = tmp_path / "isa.json"
    cpu_isa.main(["--job-log", str(log), "--workdir", str(tmp_path), "--vary", "ATEN_CPU_CAPABILITY=,default",
                  "--out", str(out)])
    record = json.loads(out.read_text())
    assert "--cpu-isa" not in record["job"] and record["settings"] == 2
    assert [r["variables"] for r in record["grid"]] == [{}, {"ATEN_CPU_CAPABILITY": "default"}]
    assert all(len(r["test_acc"]) == 2 for r in record["grid"])
    # ATen's scalar kernels sum in another order than its vector ones: the losses differ in their last digits
    assert record["distinct_outcomes"] == 2
    pinned = {r["cpu_isa"]: r for r in record["pinned"]}
    assert set(pinned) == set(CPU_ISAS)
    assert pinned["auto"]["equals_unpinned"] is True and pinned["auto"]["equals_its_variables"] is True
    assert pinned["avx2"]["equals_its_variables"] is None  # its three variables are not in this grid
    assert record["cpu_kernels"] in ("AVX2", "AVX512") and record["device"]
