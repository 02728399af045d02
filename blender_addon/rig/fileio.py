"""Atomic file writes: a file appears under its final name only when complete."""
from __future__ import annotations

import json
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; finished files get the usual permissions.
# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
FILE_MODE = 0o666 & ~_current_umask()


def _temp_tag() -> str:
    # host and pid in the name let a later writer prove the writer of a leftover is dead
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temps(path: Path) -> None:
    """Remove temporary files for `path` left by a killed writer on this host. Only names this
    module makes (`.<name>.<host>-<pid>.<random>.tmp`) whose pid is gone are touched."""
    prefix = f".{path.name}.{socket.gethostname().replace('.', '_')}-"
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Write a file through a temporary name in the same folder; it appears under `path` (with the
    usual permissions, fsynced) only when the block ends without an error. For streamed writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_temp_tag()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
