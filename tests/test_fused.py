"""Runs tests/interpreted_fused.py in a fresh process under Triton's CPU interpreter (see that file)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_fused_kernels_match_the_reference_under_the_triton_interpreter():
    pytest.importorskip("triton")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                             str(HERE / "interpreted_fused.py")], cwd=HERE.parent, capture_output=True, text=True,
                            env={**os.environ, "TRITON_INTERPRET": "1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout and "failed" not in result.stdout
