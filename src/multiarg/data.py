"""Dataset preparation: obtain MNIST / CIFAR-10, verify them, and store uint8 tensors with a manifest."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import warnings
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .io import load_torch, save_torch, sha256, write_json

DATASETS: tuple[str, ...] = ("mnist", "cifar10")
MIRROR_ENV = "MULTIARG_DATA_MIRROR"

# sha256 of the decompressed original MNIST IDX files (the gzip wrappers vary between copies).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# sha256 of the offline mirror's cifar10-jpeg.tar.gz; recorded in manifests, a different tarball is refused unless
# UNKNOWN_JPEG_ENV allows it.
CIFAR_JPEG_SHA256 = "f56d4bae85b4f56878bac30dbd8e0549729f971e26ddc17d407beba33d232fbb"
UNKNOWN_JPEG_ENV = "MULTIARG_ALLOW_UNKNOWN_JPEG"  # "1" accepts another JPEG re-encoding of CIFAR-10
CIFAR_JPEG_NOTE = ("Results use a JPEG re-encoding of CIFAR-10 (quality 75, 4:2:0 chroma; offline mirror), "
                   "not the original images, so they are not exactly comparable to published CIFAR-10 numbers.")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
COUNTS = {"mnist": (60000, 10000), "cifar10": (50000, 10000)}  # (training, test) images
SHAPES = {"mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10)}  # (image shape, classes)
_LAYOUTS = {
    "mnist": "MNIST/raw/*-ubyte[.gz] (torchvision layout), mnist/*-ubyte.gz, or the four *-ubyte.gz files "
             "directly in the folder",
    "cifar10": "cifar-10-batches-py/ or cifar-10-python.tar.gz (torchvision layout), or cifar10-jpeg.tar.gz "
               "(JPEG re-encoding, not exact)",
}
_FIX = "replace it with an intact copy (or point the mirror elsewhere) and re-run the prepare step"


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or cannot be obtained; the message says which and what to do."""


def resolve_mirror(config_value: str | None) -> Path | None:
    """Env var MULTIARG_DATA_MIRROR overrides the config value; None/'' means no mirror (download).

    A set-but-empty env var wins too, so a config mirror can be switched off from the environment.
    """
    value = os.environ.get(MIRROR_ENV, config_value)
    return Path(value).expanduser() if value else None


# ---------------------------------------------------------------- MNIST (IDX)

def _read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, dict]:
    """Parse one IDX file (gzip or raw), validating header, size and the content sha256."""
    try:
        blob = path.read_bytes()
        data = gzip.decompress(blob) if path.suffix == ".gz" else blob
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read/decompress ({type(e).__name__}: {e}); the file is truncated or "
                        f"corrupt: {_FIX}") from e
    ndim = len(shape)
    head = 4 + 4 * ndim
    if len(data) < head or int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"{path}: not an IDX file with magic number {magic}: {_FIX}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if dims != shape or len(data) != head + int(np.prod(shape)):
        raise DataError(f"{path}: IDX dims {dims} / {len(data) - head} data bytes, expected {shape}: {_FIX}")
    key = path.name.removesuffix(".gz")
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_SHA256[key]:
        raise DataError(f"{path}: decompressed sha256 {digest} differs from the original MNIST file's "
                        f"{MNIST_SHA256[key]}: {_FIX}")
    arr = np.frombuffer(data, np.uint8, offset=head).reshape(shape)
    info = {"path": str(path), "sha256": hashlib.sha256(blob).hexdigest(), "content_sha256": digest}
    return torch.from_numpy(arr.copy()), info


def _find_mnist(mirror: Path) -> tuple[dict[str, Path], str] | None:
    """Return the four IDX files from the first candidate folder holding any of them."""
    for folder, source in ((mirror / "MNIST" / "raw", "mirror-torchvision"), (mirror / "mnist", "mirror-idx"),
                           (mirror, "mirror-idx")):
        found = {}
        for base in MNIST_SHA256:
            # torchvision keeps both; the decompressed file is what it reads
            hit = next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)
            if hit is not None:
                found[base] = hit
        if found:
            missing = [b for b in MNIST_SHA256 if b not in found]
            if missing:
                raise DataError(f"{folder}: MNIST files missing: {', '.join(missing)} (.gz or decompressed); "
                                f"add them or point the mirror elsewhere")
            return found, source
    return None


def _load_mnist_dir(files: dict[str, Path]) -> tuple[dict, list[dict]]:
    out, infos = {}, []
    for split, n in (("train", 60000), ("t10k", 10000)):
        x, xi = _read_idx(files[f"{split}-images-idx3-ubyte"], 2051, (n, 28, 28))
        y, yi = _read_idx(files[f"{split}-labels-idx1-ubyte"], 2049, (n,))
        key = "train" if split == "train" else "test"
        out[f"{key}_x"], out[f"{key}_y"] = x.unsqueeze(1), y.long()
        infos += [xi, yi]
    out["classes"] = [str(i) for i in range(10)]
    return out, infos


# ---------------------------------------------------------------- CIFAR-10

def _load_cifar_torchvision(root: Path) -> tuple[dict, list[dict]]:
    """Load cifar-10-batches-py under ``root`` via torchvision, naming the first file failing its md5."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    folder = root / CIFAR10.base_folder
    for fname, md5 in CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]:
        if not check_integrity(str(folder / fname), md5):
            raise DataError(f"{folder / fname}: missing or fails torchvision's md5 check: {_FIX}")
    out: dict = {}
    for train, key in ((True, "train"), (False, "test")):
        try:
            ds = CIFAR10(str(root), train=train, download=False)
        except Exception as e:  # torchvision raises bare RuntimeError/pickle errors
            raise DataError(f"{folder}: torchvision cannot load CIFAR-10 ({e}): {_FIX}") from e
        out[f"{key}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        out[f"{key}_y"] = torch.tensor(ds.targets, dtype=torch.int64)
        out["classes"] = list(ds.classes)
    infos = [{"path": str(p), "sha256": sha256(p)} for p in sorted(folder.iterdir()) if p.is_file()]
    return out, infos


def _extract_cifar_tgz(tgz: Path, cache_dir: Path) -> None:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    if not check_integrity(str(tgz), CIFAR10.tgz_md5):
        raise DataError(f"{tgz}: fails torchvision's md5 check ({CIFAR10.tgz_md5}): {_FIX}")
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            tf.extractall(cache_dir, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{tgz}: cannot extract into {cache_dir} ({type(e).__name__}: {e}): {_FIX}") from e


def _load_cifar_jpeg(tgz: Path) -> tuple[dict, list[dict]]:
    """Decode the JPEG ImageFolder tarball without extracting it, ordered by (class, file name)."""
    from PIL import Image

    try:
        # gunzip into memory and slice members out of the buffer: ~2x faster than tarfile's
        # per-member stream objects for 60k tiny files
        blob = tgz.read_bytes()
        buf = gzip.decompress(blob)
        with tarfile.open(fileobj=io.BytesIO(buf), mode="r:") as tf:
            members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{tgz}: truncated or corrupt archive ({type(e).__name__}: {e}): {_FIX}") from e
    digest = hashlib.sha256(blob).hexdigest()
    if digest != CIFAR_JPEG_SHA256:
        if os.environ.get(UNKNOWN_JPEG_ENV) != "1":
            raise DataError(f"{tgz}: sha256 {digest} is not the known JPEG CIFAR-10 tarball's, so it was changed "
                            f"or is another re-encoding: {_FIX}; or set {UNKNOWN_JPEG_ENV}=1 to use it anyway (its "
                            f"manifest then says known_sha256: false)")
        warnings.warn(f"{tgz}: sha256 {digest} is not the known JPEG CIFAR-10 tarball; using it ({UNKNOWN_JPEG_ENV})")
    rows: dict[str, list] = {"train": [], "test": []}
    for m in members:
        parts = PurePosixPath(m.name).parts
        if m.isfile() and len(parts) >= 3 and parts[-3] in rows and parts[-1].endswith(".jpg"):
            rows[parts[-3]].append((parts[-2], parts[-1], m))
    out: dict = {}
    for split, n in zip(("train", "test"), COUNTS["cifar10"]):
        items = sorted(rows[split], key=lambda r: r[:2])
        classes = sorted({r[0] for r in items})
        if len(items) != n or classes != CIFAR_CLASSES:
            raise DataError(f"{tgz}: {split} has {len(items)} images in classes {classes}; expected {n} in "
                            f"{CIFAR_CLASSES}: {_FIX}")
        x = np.empty((n, 32, 32, 3), np.uint8)
        for i, (_, _, m) in enumerate(items):
            try:
                with Image.open(io.BytesIO(buf[m.offset_data:m.offset_data + m.size]), formats=("JPEG",)) as im:
                    im.load()
                    if im.mode != "RGB" or im.size != (32, 32):
                        raise DataError(f"{tgz}: member {m.name} is {im.mode} {im.size}, expected RGB 32x32")
                    x[i] = np.asarray(im)
            except (OSError, ValueError, SyntaxError) as e:  # Pillow's decode errors
                raise DataError(f"{tgz}: member {m.name} is not a decodable JPEG ({e}): {_FIX}") from e
        out[f"{split}_x"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.tensor([classes.index(r[0]) for r in items], dtype=torch.int64)
    out["classes"] = list(CIFAR_CLASSES)
    return out, [{"path": str(tgz), "sha256": digest, "known_sha256": digest == CIFAR_JPEG_SHA256}]


# ---------------------------------------------------------------- sources

def _from_mirror(name: str, mirror: Path, cache_dir: Path) -> tuple[dict, list[dict], str]:
    if not mirror.is_dir():
        raise DataError(f"data mirror {mirror} does not exist or is not a folder; fix `data.mirror` in the "
                        f"config or {MIRROR_ENV}, or unset both to download")
    if name == "mnist":
        hit = _find_mnist(mirror)
        if hit is not None:
            return (*_load_mnist_dir(hit[0]), hit[1])
    else:
        if (mirror / "cifar-10-batches-py").is_dir():
            return (*_load_cifar_torchvision(mirror), "mirror-torchvision")
        if (mirror / "cifar-10-python.tar.gz").is_file():
            tgz = mirror / "cifar-10-python.tar.gz"
            _extract_cifar_tgz(tgz, cache_dir)
            data, _ = _load_cifar_torchvision(cache_dir)
            return data, [{"path": str(tgz), "sha256": sha256(tgz)}], "mirror-torchvision"
        if (mirror / "cifar10-jpeg.tar.gz").is_file():
            return (*_load_cifar_jpeg(mirror / "cifar10-jpeg.tar.gz"), "mirror-jpeg")
    raise DataError(f"data mirror {mirror} holds no {name} files; expected {_LAYOUTS[name]}")


def _download(name: str, cache_dir: Path) -> tuple[dict, list[dict], str]:
    from torchvision import datasets

    try:
        cls = datasets.MNIST if name == "mnist" else datasets.CIFAR10
        cls(str(cache_dir), train=True, download=True)  # fetches and md5-checks both splits
    except Exception as e:  # URLError, RuntimeError, socket errors ...: all mean "no usable download"
        raise DataError(
            f"downloading {name} with torchvision into {cache_dir} failed ({type(e).__name__}: "
            f"{' '.join(str(e).split())}). "
            f"If an earlier download was interrupted, delete {cache_dir} and try again (torchvision reuses files "
            f"it finds there without checking them). Without internet, use a local copy: set `data.mirror` in the "
            f"config or the environment variable {MIRROR_ENV} to a folder holding {_LAYOUTS[name]}") from e
    if name == "mnist":
        files, _ = _find_mnist(cache_dir)
        data, infos = _load_mnist_dir(files)
    else:
        data, infos = _load_cifar_torchvision(cache_dir)
    return data, infos, "torchvision-download"


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean/std of x/255 from 256-bin histograms (no float copy of the whole set)."""
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        m = (counts * levels).sum() / counts.sum()
        means.append(m)
        stds.append(((counts * (levels - m) ** 2).sum() / counts.sum()).sqrt())
    return torch.stack(means).float(), torch.stack(stds).float()


def manifest_path(out: Path) -> Path:
    return Path(out).with_suffix(".manifest.json")


def prepare(name: str, out: Path, mirror: Path | None, cache_dir: Path) -> dict:
    """Obtain the dataset and write the prepared tensors to `out` (a .pt, atomically) plus a manifest
    `out.with_suffix('.manifest.json')` holding sha256 of the .pt, the source, whether it is exact, counts,
    and sha256 of the raw source files used. Returns the manifest."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    out, cache_dir = Path(out), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        data, raw, source = _from_mirror(name, Path(mirror), cache_dir)
    else:
        data, raw, source = _download(name, cache_dir)
    exact = source != "mirror-jpeg"
    mean, std = _channel_stats(data["train_x"])
    data.update(mean=mean, std=std, name=name, source=source, exact=exact, note="" if exact else CIFAR_JPEG_NOTE)
    save_torch(data, out)
    manifest = {
        "name": name, "file": out.name, "sha256": sha256(out), "source": source, "exact": exact,
        "note": data["note"], "mirror": str(mirror) if mirror is not None else None,
        "counts": {"train": len(data["train_y"]), "test": len(data["test_y"])},
        "shape": list(data["train_x"].shape[1:]), "classes": data["classes"],
        "mean": mean.tolist(), "std": std.tolist(), "raw_files": raw,
    }
    write_json(manifest, manifest_path(out))
    return manifest


def load_prepared(path: Path, verify: bool = True) -> dict:
    """Load a prepared .pt; with verify, check its sha256 against the manifest and fail with
    DataError naming the file and the fix ("delete it and re-run the prepare step") on mismatch or
    missing manifest."""
    path = Path(path)
    fix = "delete it and re-run the prepare step"
    if not path.is_file():
        raise DataError(f"prepared data {path} not found; run the prepare step")
    if verify:
        mpath = manifest_path(path)
        try:
            expected = json.loads(mpath.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: manifest {mpath} missing or unreadable ({e}); {fix}") from e
        actual = sha256(path)
        if actual != expected:
            raise DataError(f"{path}: sha256 {actual} does not match its manifest ({expected}); the file is "
                            f"corrupt or was changed: {fix}")
    try:
        return load_torch(path, check=not verify)  # a verified sha256 already covers every byte
    except Exception as e:  # torch raises many types for a damaged zip/pickle
        raise DataError(f"{path}: cannot be loaded ({type(e).__name__}: {e}); {fix}") from e


def split(prepared: dict, val_size: int, split_seed: int, train_limit: int | None = None,
          test_limit: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Seeded validation split taken from the training set: returns {'train': (x, y), 'val': (x, y), 'test': (x, y)}
    as uint8 images and int64 labels. A torch.Generator seeded with split_seed permutes the training indices;
    the first val_size go to val, the rest to train. train_limit/test_limit (demo-scale subsets) keep the
    first train_limit of the remaining permuted train indices and a seeded random subset of test_limit test images
    (None = all). Raise ValueError with a clear message if val_size + train_limit exceeds what is available."""
    n, n_test = len(prepared["train_y"]), len(prepared["test_y"])
    if val_size < 0 or (train_limit is not None and train_limit < 1) or (test_limit is not None and test_limit < 1):
        raise ValueError(f"val_size must be >= 0 and limits >= 1 (got val_size={val_size}, "
                         f"train_limit={train_limit}, test_limit={test_limit})")
    need = val_size + (train_limit if train_limit is not None else 1)
    if need > n:
        raise ValueError(f"val_size={val_size} + train_limit={train_limit} needs {need} training images but "
                         f"{prepared.get('name', 'the dataset')} has only {n}")
    if test_limit is not None and test_limit > n_test:
        raise ValueError(f"test_limit={test_limit} exceeds the {n_test} test images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if train_limit is not None:
        train_idx = train_idx[:train_limit]
    x, y = prepared["train_x"], prepared["train_y"]
    return {
        "train": (x[train_idx], y[train_idx]),
        "val": (x[val_idx], y[val_idx]),
        "test": test_subset(prepared, test_limit, split_seed),
    }


def test_subset(prepared: dict, test_limit: int | None, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images and labels a run is scored on: all, or a seeded subset of ``test_limit``."""
    n_test = len(prepared["test_y"])
    test_idx = torch.arange(n_test)
    if test_limit is not None:
        # own generator so the test subset does not depend on the training-set size
        g = torch.Generator().manual_seed(split_seed)
        test_idx = torch.randperm(n_test, generator=g)[:test_limit].sort().values
    return prepared["test_x"][test_idx], prepared["test_y"][test_idx]


def manifest_sha(path: Path) -> str:
    """The checksum the manifest records for a prepared file (identifies the data in fingerprints)."""
    return json.loads(manifest_path(Path(path)).read_text())["sha256"]
