import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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


@pytest.fixture(scope="session")
def cifar_images(mirror) -> np.ndarray:
    """48 real CIFAR-10 test images (NHWC uint8), 5 per class, from the offline JPEG mirror."""
    tgz = mirror / "cifar10-jpeg.tar.gz"
    if not tgz.is_file():
        pytest.skip(f"{tgz} not found")
    per_class: dict[str, list] = {}
    with tarfile.open(tgz, "r|gz") as tf:
        for m in tf:
            parts = m.name.split("/")
            if m.isfile() and len(parts) >= 3 and parts[-3] == "test" and len(per_class.get(parts[-2], [])) < 5:
                im = Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB")
                per_class.setdefault(parts[-2], []).append(np.asarray(im))
                if len(per_class) == 10 and all(len(v) == 5 for v in per_class.values()):
                    break
    return np.stack([im for name in sorted(per_class) for im in per_class[name]])[:48]


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)


@pytest.fixture
def compile_mode():
    """``multiarg.train.set_compile``, with eager training restored afterwards and compiled graphs dropped before and
    after, so that no test runs a graph compiled under another test's Inductor settings."""
    from multiarg.train import set_compile

    torch._dynamo.reset()
    yield set_compile
    set_compile("none")
    torch._dynamo.reset()


@pytest.fixture
def cifar10c_errors():
    """A writer of one evaluated run's CIFAR-10-C error file, as ``cifar10c.evaluate_run`` writes it: ``error`` on
    every corrupted set, half of it clean. Returns the file's path."""
    from multiarg.corruptions import CORRUPTIONS
    from multiarg.io import write_json

    def write(root: Path, arch: str, activation: str, seed: int, error: float) -> str:
        path = root / f"runs/cifar10/{arch}/{activation}/seed{seed}/session3/cifar10c_errors.json"
        path.parent.mkdir(parents=True)
        write_json({"clean": error / 2, "source": "generated", "data_note": "",
                    "corrupted": {c: {str(s): error for s in range(1, 6)} for c in CORRUPTIONS}}, path)
        return str(path)

    return write
