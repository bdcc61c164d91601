"""Outputs are written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartimaging.atomic import atomic_path, atomic_write, write_bytes, write_text


def test_write_text_and_bytes(tmp_path: Path) -> None:
    p = write_text(tmp_path / "sub" / "a.txt", "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    assert write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "x.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"data")
    assert (tmp_path / "x.nii.gz").read_bytes() == b"data"


def test_read_modes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "x", "a"):
        pass


def test_outputs_get_ordinary_permissions_not_mkstemp_0600(tmp_path: Path) -> None:
    import os
    import stat

    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    written = write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(os.stat(written).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
