"""Atomic file writes and checksums: a half-written file never looks finished."""
from __future__ import annotations

import glob
import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

import torch

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success. Temporary files a killed
    writer of ``path`` left behind (a SIGKILL skips the cleanup) are removed first: one job writes each path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")  # mkstemp's names for this path
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.fullmatch(leftover.name):
            leftover.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from collaborators
        os.replace(tmp, path)
        _sync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """A rename lasts through a power loss only once its folder is synced; some file systems refuse to, and then the
    rename is as durable as they make it."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class CorruptFile(RuntimeError):
    """A file written by :func:`save_torch` that does not read back intact."""


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` atomically. Through an open handle torch names the archive's folder "archive" (given a path
    it would store the temporary file's random name), so equal objects give byte-equal files."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            torch.save(obj, fh)
    except RuntimeError as e:  # torch reports a full disk as "unexpected pos ...", naming no file
        raise OSError(f"could not write {path} (is the disk full?): {e}") from e


def load_torch(path: str | os.PathLike, check: bool = True) -> Any:
    """Load a file written by :func:`save_torch` without unpickling arbitrary objects. ``check`` first verifies
    the archive's CRCs, which ``torch.load`` does not: a flipped bit would load as a silently different tensor.
    The file is read once, for both."""
    if not check:
        return torch.load(path, map_location="cpu", weights_only=True)
    fix = "delete it and re-run the step that wrote it"
    try:
        data = io.BytesIO(Path(path).read_bytes())
        with zipfile.ZipFile(data) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        raise CorruptFile(f"{path} is not a readable torch file ({e}); {fix}") from e
    if bad is not None:
        raise CorruptFile(f"{path} is corrupt: {bad} fails its CRC check; {fix}")
    data.seek(0)
    return torch.load(data, map_location="cpu", weights_only=True)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """The workflow's JSON: keys sorted; a NaN stays NaN (a diverged seed's value), which Python reads back."""
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_record(obj: Any, path: str | os.PathLike) -> None:
    """A record for readers outside Python (the benchmarks' and accounts' JSON): keys in their order, NaN and
    infinities as null, since strict JSON has no such numbers and a NaN never compares equal to itself."""
    write_text(json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n", path)


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_identity(path: str | os.PathLike | None) -> str | None:
    """``path`` with its content's sha256, so a checkpoint tied to it is not resumed after the file changes."""
    return None if path is None else f"{path}@sha256:{sha256(path)}"
