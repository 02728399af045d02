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
    """A ustar header, as tarfile writes it for TarInfo(name, size, mtime 0, mode 0644, owner 0,
    no user or group name), built directly: tarfile's own takes 10x as long, per member."""
    raw = name.encode("utf-8")
    if len(raw) > 100:
        raise ValueError(f"{name}: longer than a ustar name (100 bytes)")
    buf = bytearray(raw.ljust(100, b"\0") + b"0000644\0" + b"0000000\0" * 2 + b"%011o\0" % size
                    + b"00000000000\0" + b" " * 8 + b"0" + b"\0" * 100 + b"ustar\x0000")
    buf += b"\0" * (BLOCK - len(buf))  # no user, group, device numbers or prefix
    buf[148:155] = b"%06o\0" % sum(buf)
    return bytes(buf)


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
