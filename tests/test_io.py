"""Atomic writes: a finished file appears whole, a failed write leaves nothing behind."""
import json
import math

import pytest

from multiarg.io import atomic_path, write_json, write_record, write_text


def test_a_successful_write_is_published_with_no_temporary_left(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("done")
        assert not path.exists()  # nothing is visible until the block ends
    assert path.read_text() == "done" and list(path.parent.iterdir()) == [path]


def test_a_failed_write_publishes_nothing_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "out.txt"
    write_text("old", path)
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_the_folder_is_synced_after_the_rename_so_a_power_loss_keeps_it(tmp_path, monkeypatch):
    import os

    synced, fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd))[1])
    write_text("x", tmp_path / "out.txt")
    assert synced[-1] == str(tmp_path) and (tmp_path / "out.txt").read_text() == "x"


def test_a_record_is_strict_json_where_the_workflows_json_keeps_nan(tmp_path):
    def refuse(constant):
        raise ValueError(constant)
    value = {"p": float("nan"), "rows": [(1.5, float("inf"))], "n": 3}
    write_record(value, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse) == {"p": None, "rows": [[1.5, None]],
                                                                                    "n": 3}
    write_json(value, tmp_path / "w.json")
    assert math.isnan(json.loads((tmp_path / "w.json").read_text())["p"])
