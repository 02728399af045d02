"""Atomic writes: complete files only, usual permissions, nothing left behind on failure."""
from __future__ import annotations

import json
import os
import stat

import pytest

from blender_addon.rig import fileio
from blender_addon.rig.fileio import atomic_write_json, atomic_write_text


def test_written_file_has_content_and_the_umask_permissions(tmp_path):
    path = atomic_write_json(tmp_path / "deep" / "data.json", {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert stat.S_IMODE(path.stat().st_mode) == fileio.FILE_MODE
    assert fileio.FILE_MODE & 0o044  # readable by others under the usual 022 umask, unlike mkstemp's 0600
    assert os.listdir(path.parent) == ["data.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "f.txt", "old")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]

