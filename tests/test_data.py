"""Tests for multiarg.data against the offline copies in shared/data."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from multiarg import data
from multiarg.data import DataError
from multiarg.io import sha256

# the offline copies: $MULTIARG_DATA_MIRROR as in conftest.py, else shared/data beside the repository
MIRROR = Path(os.environ.get(data.MIRROR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"]
# published MNIST per-class counts
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

needs_mirror = pytest.mark.skipif(not (MIRROR / "mnist").is_dir(),
                                  reason=f"offline dataset copies not found at {MIRROR}")


def _prepare(name: str, needs: str, tmp_path_factory):
    if not (MIRROR / needs).exists():
        pytest.skip(f"{needs} not found in {MIRROR}")
    d = tmp_path_factory.mktemp(name)
    manifest = data.prepare(name, d / f"{name}.pt", MIRROR, d / "cache")
    return d / f"{name}.pt", manifest


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return _prepare("mnist", "mnist", tmp_path_factory)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return _prepare("cifar10", "cifar10-jpeg.tar.gz", tmp_path_factory)


@pytest.fixture
def offline(monkeypatch):
    """Make every torchvision download fail as it would without internet."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    for mod in (tv_mnist, tv_cifar):
        monkeypatch.setattr(mod, "download_and_extract_archive", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_mnist_from_mirror(mnist):
    path, manifest = mnist
    d = data.load_prepared(path)
    assert d["train_x"].shape == (60000, 1, 28, 28) and d["train_x"].dtype == torch.uint8
    assert d["test_x"].shape == (10000, 1, 28, 28) and d["test_x"].dtype == torch.uint8
    assert d["train_y"].dtype == torch.int64 and d["test_y"].dtype == torch.int64
    assert d["train_y"].bincount().tolist() == MNIST_TRAIN_COUNTS
    assert d["test_y"].bincount().tolist() == MNIST_TEST_COUNTS
    assert d["mean"].dtype == torch.float32 and d["mean"].shape == (1,)
    assert d["mean"].item() == pytest.approx(0.1307, abs=1e-4)
    assert d["std"].item() == pytest.approx(0.3081, abs=1e-4)
    assert (d["name"], d["source"], d["exact"], d["note"]) == ("mnist", "mirror-idx", True, "")
    assert d["classes"] == [str(i) for i in range(10)]
    assert manifest["counts"] == {"train": 60000, "test": 10000}
    assert {Path(r["path"]).name.removesuffix(".gz") for r in manifest["raw_files"]} == set(MNIST_FILES)
    for r in manifest["raw_files"]:
        assert r["sha256"] == sha256(r["path"])
        assert r["content_sha256"] == data.MNIST_SHA256[Path(r["path"]).name.removesuffix(".gz")]


def test_manifest_matches_file(mnist):
    path, manifest = mnist
    on_disk = json.loads(path.with_suffix(".manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["sha256"] == sha256(path)
    assert manifest["file"] == path.name


def test_load_prepared_detects_tampering(mnist, tmp_path):
    src, _ = mnist
    pt = tmp_path / src.name
    shutil.copy(src, pt)
    shutil.copy(src.with_suffix(".manifest.json"), pt.with_suffix(".manifest.json"))
    raw = bytearray(pt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pt.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="delete it and re-run the prepare step") as e:
        data.load_prepared(pt)
    assert str(pt) in str(e.value)

    pt.with_suffix(".manifest.json").unlink()
    with pytest.raises(DataError, match="manifest") as e:
        data.load_prepared(pt)
    assert str(pt) in str(e.value) and "re-run the prepare step" in str(e.value)


def _copy_mnist(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in MNIST_FILES:
        shutil.copy(MIRROR / "mnist" / f"{f}.gz", dest / f"{f}.gz")
    return dest


@needs_mirror
def test_truncated_gz_is_reported(tmp_path):
    mirror = _copy_mnist(tmp_path / "mirror")  # files directly in the mirror folder
    bad = mirror / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        data.prepare("mnist", tmp_path / "m.pt", mirror, tmp_path / "cache")
    assert str(bad) in str(e.value)
    assert not (tmp_path / "m.pt").exists()


@needs_mirror
def test_altered_content_fails_checksum(tmp_path):
    mirror = _copy_mnist(tmp_path / "mirror" / "mnist")
    bad = mirror / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(bad.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # a wrong label keeps the IDX structure valid
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="sha256") as e:
        data.prepare("mnist", tmp_path / "m.pt", tmp_path / "mirror", tmp_path / "cache")
    assert str(bad) in str(e.value)


@needs_mirror
def test_torchvision_raw_layout(mnist, tmp_path):
    from torchvision.datasets import MNIST

    raw = tmp_path / "mirror" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_FILES:
        (raw / f).write_bytes(gzip.decompress((MIRROR / "mnist" / f"{f}.gz").read_bytes()))
    manifest = data.prepare("mnist", tmp_path / "m.pt", tmp_path / "mirror", tmp_path / "cache")
    assert manifest["source"] == "mirror-torchvision" and manifest["exact"]
    ours = data.load_prepared(tmp_path / "m.pt")
    ref = data.load_prepared(mnist[0])
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(ours[k], ref[k])
    # torchvision's own reader agrees with our IDX parser
    tv = MNIST(str(tmp_path / "mirror"), train=False, download=False)
    assert torch.equal(tv.data, ours["test_x"][:, 0]) and torch.equal(tv.targets, ours["test_y"])


@pytest.mark.parametrize("name", data.DATASETS)
def test_no_mirror_no_network(name, tmp_path, offline):
    with pytest.raises(DataError, match="MULTIARG_DATA_MIRROR") as e:
        data.prepare(name, tmp_path / "x.pt", None, tmp_path / "cache")
    assert "failed" in str(e.value) and "data.mirror" in str(e.value)


def test_missing_or_empty_mirror(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.prepare("mnist", tmp_path / "x.pt", tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no cifar10"):
        data.prepare("cifar10", tmp_path / "x.pt", tmp_path / "empty", tmp_path / "cache")


def test_corrupt_torchvision_cifar_batches(tmp_path):
    folder = tmp_path / "mirror" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for f in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
              "batches.meta"]:
        (folder / f).write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="md5") as e:
        data.prepare("cifar10", tmp_path / "x.pt", tmp_path / "mirror", tmp_path / "cache")
    assert str(folder / "data_batch_1") in str(e.value)


def test_corrupt_torchvision_cifar_tarball(tmp_path):
    (tmp_path / "mirror").mkdir()
    bad = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    bad.write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(DataError, match="md5") as e:
        data.prepare("cifar10", tmp_path / "x.pt", tmp_path / "mirror", tmp_path / "cache")
    assert str(bad) in str(e.value)


def test_resolve_mirror(monkeypatch, tmp_path):
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    assert data.resolve_mirror(None) is None
    assert data.resolve_mirror("") is None
    assert data.resolve_mirror(str(tmp_path)) == tmp_path
    monkeypatch.setenv(data.MIRROR_ENV, str(tmp_path / "env"))
    assert data.resolve_mirror(str(tmp_path)) == tmp_path / "env"
    assert data.resolve_mirror(None) == tmp_path / "env"
    monkeypatch.setenv(data.MIRROR_ENV, "")  # explicitly switched off
    assert data.resolve_mirror(str(tmp_path)) is None


def _fake(n: int = 100, n_test: int = 40) -> dict:
    # labels are unique ids so membership can be checked exactly
    return {"train_x": torch.arange(n).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(),
            "train_y": torch.arange(n), "test_x": torch.zeros(n_test, 1, 2, 2, dtype=torch.uint8),
            "test_y": torch.arange(1000, 1000 + n_test), "name": "fake"}


def test_split_sizes_disjoint_deterministic():
    p = _fake()
    a = data.split(p, val_size=20, split_seed=7)
    b = data.split(p, val_size=20, split_seed=7)
    for k in ("train", "val", "test"):
        assert torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1])
    tr, va = set(a["train"][1].tolist()), set(a["val"][1].tolist())
    assert len(va) == 20 and len(tr) == 80 and not tr & va and tr | va == set(range(100))
    assert torch.equal(a["train"][0][:, 0, 0, 0], a["train"][1].to(torch.uint8))  # x stays paired with y
    assert a["train"][0].dtype == torch.uint8 and a["val"][1].dtype == torch.int64
    assert torch.equal(a["test"][1], p["test_y"])
    c = data.split(p, val_size=20, split_seed=8)
    assert set(c["val"][1].tolist()) != va


def test_split_limits():
    p = _fake()
    a = data.split(p, val_size=10, split_seed=1, train_limit=30, test_limit=15)
    full = data.split(p, val_size=10, split_seed=1)
    assert len(a["train"][1]) == 30 and len(a["val"][1]) == 10 and len(a["test"][1]) == 15
    assert torch.equal(a["val"][1], full["val"][1])
    assert torch.equal(a["train"][1], full["train"][1][:30])
    test_ids = a["test"][1].tolist()
    assert len(set(test_ids)) == 15 and set(test_ids) <= set(p["test_y"].tolist())
    assert torch.equal(a["test"][1], data.split(p, 10, 1, 30, 15)["test"][1])
    assert data.split(p, 10, 1, 100 - 10)["train"][1].numel() == 90
    with pytest.raises(ValueError, match="needs 101"):
        data.split(p, val_size=10, split_seed=1, train_limit=91)
    with pytest.raises(ValueError, match="test_limit"):
        data.split(p, val_size=10, split_seed=1, test_limit=41)


def test_the_scored_test_subset_follows_the_split_seed():
    p = _fake()
    one, two = data.test_subset(p, 15, 1), data.test_subset(p, 15, 2)
    assert not torch.equal(one[1], two[1]) and torch.equal(one[1], data.test_subset(p, 15, 1)[1])
    assert torch.equal(data.test_subset(p, None, 1)[1], p["test_y"])


def test_cifar_jpeg(cifar):
    path, manifest = cifar
    d = data.load_prepared(path)
    assert d["train_x"].shape == (50000, 3, 32, 32) and d["test_x"].shape == (10000, 3, 32, 32)
    assert d["train_x"].dtype == torch.uint8 and d["train_y"].dtype == torch.int64
    assert d["train_y"].bincount().tolist() == [5000] * 10
    assert d["test_y"].bincount().tolist() == [1000] * 10
    assert d["classes"] == data.CIFAR_CLASSES
    assert d["exact"] is False and d["source"] == "mirror-jpeg"
    assert "JPEG" in d["note"] and "\n" not in d["note"] and manifest["note"] == d["note"]
    assert manifest["exact"] is False and manifest["sha256"] == sha256(path)
    assert manifest["raw_files"][0]["sha256"] == data.CIFAR_JPEG_SHA256
    # close to the original CIFAR-10 statistics despite the re-encoding
    assert d["mean"].tolist() == pytest.approx([0.4914, 0.4822, 0.4465], abs=5e-3)
    assert d["std"].tolist() == pytest.approx([0.2470, 0.2435, 0.2616], abs=1e-2)
    # sorted by (class, file name): labels are non-decreasing
    assert bool((d["train_y"].diff() >= 0).all())


def test_cifar_truncated_tarball(tmp_path):
    if not (MIRROR / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"cifar10-jpeg.tar.gz not found in {MIRROR}")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    bad = mirror / "cifar10-jpeg.tar.gz"
    with open(MIRROR / "cifar10-jpeg.tar.gz", "rb") as fh:
        bad.write_bytes(fh.read(2_000_000))
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        data.prepare("cifar10", tmp_path / "c.pt", mirror, tmp_path / "cache")
    assert str(bad) in str(e.value)
