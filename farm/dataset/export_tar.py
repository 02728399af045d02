"""Tar shards written byte for byte the same on every run: fixed headers (mtime 0, owner 0,
mode 0644, ustar), members in the order given, each shard under a temporary name until complete.

A WebDataset sample is the run of members that share a key (`<key>.png`, `<key>.txt`, ...), so
a sample's members are written together and never split across shards.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from blender_addon.rig.fileio import atomic_open

BLOCK = tarfile.BLOCKSIZE  # 512
END_OF_ARCHIVE = 2 * BLOCK  # two zero blocks


def padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def member_size(data_size: int) -> int:
    """Bytes one member takes in the archive: its header and its data padded to a block."""
    return BLOCK + padded(data_size)


def header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


class ShardFile:
    """An open shard: members appended, its size and sha256 kept as it grows."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.bytes = 0

    def _write(self, data: bytes) -> None:
        self.fh.write(data)
        self.sha.update(data)
        self.bytes += len(data)

    def add(self, name: str, data: bytes) -> None:
        self._write(header(name, len(data)))
        self._write(data)
        pad = padded(len(data)) - len(data)
        if pad:
            self._write(b"\0" * pad)

    def close_archive(self) -> None:
        self._write(b"\0" * END_OF_ARCHIVE)


@contextmanager
def open_shard(path: Path) -> Iterator[ShardFile]:
    """A shard that appears under `path` only when the block ends without an error."""
    with atomic_open(path, "wb") as fh:
        shard = ShardFile(fh)
        yield shard
        shard.close_archive()


def remove_temporaries(folder: Path, prefix: str) -> None:
    """Temporary files a killed export left in `folder` (atomic_open's `.<name>.*.tmp`)."""
    for entry in os.scandir(folder):
        if entry.name.startswith(f".{prefix}") and entry.name.endswith(".tmp"):
            os.unlink(entry.path)
