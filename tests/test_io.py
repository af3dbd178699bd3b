"""Atomic writes: a finished file appears whole, a failed write leaves nothing behind."""
import pytest

from multiarg.io import atomic_path, write_text


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
