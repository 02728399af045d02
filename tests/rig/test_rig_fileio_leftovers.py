"""A killed writer's temporary file is removed by the next writer of the same file, and nothing else is."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from blender_addon.rig.fileio import atomic_write_text


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_write_removes_only_a_dead_writers_temp(tmp_path):
    host = socket.gethostname().replace(".", "_")
    target = tmp_path / "metadata.json"
    dead = tmp_path / f".metadata.json.{host}-{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".metadata.json.{host}-{os.getpid()}.def456.tmp"
    other_host = tmp_path / f".metadata.json.elsewhere-{_dead_pid()}.ghi789.tmp"
    users = tmp_path / ".metadata.json.mine.tmp"
    other_file = tmp_path / f".captions.json.{host}-{_dead_pid()}.jkl.tmp"
    for path in (dead, alive, other_host, users, other_file):
        path.write_text("partial")
    atomic_write_text(target, "[]")
    assert target.read_text() == "[]"
    assert not dead.exists()
    assert alive.exists() and other_host.exists() and users.exists() and other_file.exists()
