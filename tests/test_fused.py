"""Runs tests/fused_cases.py in a fresh process: under Triton's CPU interpreter, and on CUDA where present."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("where", ["interpreter", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_fused_kernels_match_the_reference(where):
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if where == "interpreter":
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsfE",
                             str(HERE / "fused_cases.py")], cwd=HERE.parent, capture_output=True, text=True, env=env)
    # the failed cases' names first: their captured logs can fill the rest of what is shown
    failed = "\n".join(line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR")))
    assert result.returncode == 0, failed + "\n" + result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout and "failed" not in result.stdout
