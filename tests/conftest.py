import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = Path(os.environ.get("MULTIARG_DATA_MIRROR") or SHARED_DATA)
    if not (path / "mnist").is_dir() and not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no MNIST mirror at {path} (set MULTIARG_DATA_MIRROR)")
    return path


@pytest.fixture(scope="session")
def mnist_pt(mirror, tmp_path_factory) -> Path:
    from multiarg.data import prepare

    out = tmp_path_factory.mktemp("data") / "mnist.pt"
    prepare("mnist", out, mirror, out.parent / "cache")
    return out


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
