import os

import pytest

from torchfit.utils.file_utils import atomic_write


def test_writes_bytes_and_text(tmp_path):
    path = tmp_path / "a.bin"
    with atomic_write(path) as f:
        f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with atomic_write(str(tmp_path / "b.txt"), "w") as f:
        f.write("héllo")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"


def test_error_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"old checkpoint")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old checkpoint"
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    path = tmp_path / "x"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as f:
            f.write(b"partial")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_replaces_existing_with_normal_permissions(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("old")
    with atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_rejects_non_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
