"""Damaged files are named and refused, a damaged checkpoint costs its epochs and not the run, and saves are
reproducible byte for byte (the README's "Faults" section)."""
import gzip
import logging

import pytest
import torch
from torch import nn

from multiarg import data
from multiarg.io import CorruptFile, load_torch, save_torch
from multiarg.train import TrainConfig, fit


def test_equal_objects_save_to_equal_bytes(tmp_path):
    obj = {"w": torch.arange(100.0), "note": "x"}
    save_torch(obj, tmp_path / "a.pt")
    save_torch(obj, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_a_flipped_bit_or_a_truncated_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "model.pt"
    save_torch({"w": torch.arange(1000.0)}, path)
    raw = bytearray(path.read_bytes())
    raw[raw.find(torch.arange(1000.0).numpy().tobytes()[800:816])] ^= 1  # one bit of one float
    flipped, truncated = tmp_path / "flipped.pt", tmp_path / "truncated.pt"
    flipped.write_bytes(raw)
    truncated.write_bytes(raw[:300])
    assert not torch.equal(torch.load(flipped, weights_only=True)["w"], torch.arange(1000.0))  # torch alone loads it
    for bad in (flipped, truncated):
        with pytest.raises(CorruptFile, match=f"{bad}.*delete it and re-run"):
            load_torch(bad)
    assert torch.equal(load_torch(path)["w"], torch.arange(1000.0))


def test_a_failed_save_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    def full_disk(obj, fh):
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 229824 vs 229712")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=f"could not write {tmp_path / 'model.pt'} \\(is the disk full"):
        save_torch({}, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def _fit(checkpoint, stop_after=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(1)
    splits = {k: (torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8),
                  torch.randint(0, 3, (n,), generator=g)) for k, n in (("train", 64), ("val", 32), ("test", 32))}
    return fit(model, splits, TrainConfig(seed=0, max_epochs=3, batch_size=16), checkpoint, fingerprint="run",
               device=torch.device("cpu"), stop_after=stop_after)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(tmp_path, caplog, damage):
    straight = _fit(tmp_path / "straight.pt")
    checkpoint = tmp_path / "checkpoint.pt"
    _fit(checkpoint, stop_after=1)
    if damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        save_torch({"epoch": 3}, checkpoint)  # a checkpoint of some other program or version
    with caplog.at_level(logging.WARNING, logger="multiarg.train"):
        again = _fit(checkpoint)
    assert "training from the start" in caplog.text and str(checkpoint) in caplog.text
    assert [r["epoch"] for r in again["history"]] == [1, 2, 3]
    for key, value in straight["state"].items():
        assert torch.equal(value, again["state"][key]), key


def test_a_cifar_tarball_that_fails_its_checksum_is_refused(mirror, tmp_path, monkeypatch):
    known = mirror / "cifar10-jpeg.tar.gz"
    if not known.is_file():
        pytest.skip(f"cifar10-jpeg.tar.gz not found in {mirror}")
    (tmp_path / "mirror").mkdir()
    changed = tmp_path / "mirror" / known.name  # the same images, other bytes: what a changed file looks like
    changed.write_bytes(gzip.compress(gzip.decompress(known.read_bytes()), compresslevel=1))
    monkeypatch.delenv(data.UNKNOWN_JPEG_ENV, raising=False)
    with pytest.raises(data.DataError, match=f"{changed}: sha256 .* {data.UNKNOWN_JPEG_ENV}=1"):
        data.prepare("cifar10", tmp_path / "c.pt", tmp_path / "mirror", tmp_path / "cache")


def test_a_killed_writers_temporary_files_are_cleared_by_the_next_write(tmp_path):
    left = [tmp_path / ".model.pt.k3j9x_2q.tmp", tmp_path / ".model.pt.bak.abcdefgh.tmp"]  # the second: another path
    for p in left:
        p.write_bytes(b"partial")
    save_torch({"w": torch.zeros(1)}, tmp_path / "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.pt.bak.abcdefgh.tmp", "model.pt"]


def test_resuming_on_another_device_or_cpu_kind_says_so_and_records_it(tmp_path, caplog):
    checkpoint = tmp_path / "checkpoint.pt"
    _fit(checkpoint, stop_after=1)
    state = load_torch(checkpoint)
    here = f"cpu ({torch.backends.cpu.get_cpu_capability()})"
    assert state["ran_on"] == [here]
    for elsewhere in ("cuda (NVIDIA H100 80GB HBM3)", "cpu (AVX2 elsewhere)"):  # a GPU; a SLURM retry's other CPU
        save_torch({**state, "ran_on": [elsewhere]}, checkpoint)
        with caplog.at_level(logging.WARNING, logger="multiarg.train"):
            result = _fit(checkpoint)
        assert f"resumed on {here} a checkpoint written on {elsewhere}" in caplog.text
        assert result["ran_on"] == [elsewhere, here]
