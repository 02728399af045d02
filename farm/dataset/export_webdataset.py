"""`farm dataset export OUT --format webdataset`: size-capped tar shards for training code.

    DEST/shard-000000.tar ...   per sample <key>.png (or .jpg, the file as rendered), <key>.txt (the
                                caption) and <key>.json (export_samples.Sample.meta: ids, uid,
                                category, source, camera-to-world pose, intrinsics); key = img_id
    DEST/shards.json            files, sample counts, bytes, sha256, first and last key per shard

Order: metadata.json's (obj_id, then view), or with a shuffle seed a fixed permutation by a
counter-based hash of (seed, img_id), which spreads one object's views across shards. A shard is
cut before the sample that would take it past the shard size (a larger sample gets one alone).
Each shard appears under its name only when complete (export_tar), and `.export-state.json`
lists the finished ones, so a rerun after a kill writes only the rest, and the result is byte
for byte an uninterrupted run's. A rerun after OUT or the settings changed starts afresh.
"""
from __future__ import annotations

import json
import os
import re
import sys
from array import array
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from blender_addon.contract.layout import METADATA_JSON, OBJECTS_JSONL
from blender_addon.rig.fileio import atomic_write_json
from blender_addon.rig.seeding import view_uniforms

from .common import DatasetError
from .export_samples import Sample
from .export_tar import END_OF_ARCHIVE, ShardFile, member_size, open_shard, remove_temporaries

DEFAULT_SHARD_SIZE = 1_000_000_000
SHARD_NAME = "shard-{:06d}.tar"
SHARD_FILE = re.compile(r"^shard-(\d{6,})\.tar$")
INDEX = "shards.json"
STATE = ".export-state.json"
SPOOL = ".shuffle-spool.jsonl"


def text_members(sample: Sample) -> list[tuple[str, bytes]]:
    """The caption and the ids, pose and intrinsics (the image is the sample's first member)."""
    meta = json.dumps(sample.meta, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    return [(f"{sample.key}.txt", sample.caption.encode()), (f"{sample.key}.json", meta)]


def image_member(sample: Sample) -> tuple[str, bytes]:
    return f"{sample.key}.{sample.ext}", sample.src.read_bytes()


def shuffled(samples: Iterator[Sample], seed: int, spool: Path) -> Iterator[Sample]:
    """The samples in a fixed random order. They are spooled to a file one line each; only their
    offsets and img_ids stay in memory (16 bytes a sample)."""
    offsets, img_ids = array("q"), array("q")
    with spool.open("w+b") as fh:
        for s in samples:
            offsets.append(fh.tell())
            img_ids.append(int(s.meta["img_id"]))
            fh.write(json.dumps([s.key, s.rel, str(s.src), s.caption, s.meta]).encode() + b"\n")
        ids = np.frombuffer(img_ids, dtype=np.int64) if len(img_ids) else np.zeros(0, np.int64)
        order = np.argsort(view_uniforms(seed, "webdataset_shuffle", indices=ids)[0], kind="stable")
        for i in order:
            fh.seek(offsets[i])
            key, rel, src, caption, meta = json.loads(fh.readline())
            yield Sample(key, rel, Path(src), caption, meta)
    spool.unlink()


@dataclass
class Shard:
    index: int
    first: str
    skip: dict | None  # the finished shard this one repeats, when resuming
    stack: ExitStack | None = None  # the open shard file, when writing
    writer: ShardFile | None = None
    samples: int = 0
    bytes: int = END_OF_ARCHIVE
    last: str = ""


class ResumeMismatch(Exception):
    """A shard listed as finished no longer matches what OUT gives: start afresh."""


class WebDatasetExport:
    def __init__(self, out: Path, dest: Path, shard_size: int = DEFAULT_SHARD_SIZE,
                 shuffle_seed: int | None = None, progress=None):
        self.out, self.dest, self.shard_size, self.shuffle_seed = out, dest, shard_size, shuffle_seed
        self.progress = progress  # a tqdm-like bar (update(n)) or None
        self.recorded = -1  # finished shards the state file lists (-1: no state file)
        self.fingerprint = {"version": 1, "shard_size": shard_size, "shuffle_seed": shuffle_seed,
                            **{name: _stamp(out / name) for name in (METADATA_JSON, OBJECTS_JSONL)}}

    # --- resume state -------------------------------------------------------------------------
    def _finished(self) -> list[dict]:
        """The shards a killed (or complete) earlier run finished with the same OUT and settings:
        shards.json's, or the state file's (its fingerprint, then one line per finished shard; a
        line cut by a kill is ignored)."""
        try:
            index = json.loads((self.dest / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            index = None
        if isinstance(index, dict) and index.get("fingerprint") == self.fingerprint:
            return list(index.get("shards") or [])
        lines = []
        try:
            with (self.dest / STATE).open(encoding="utf-8") as fh:
                for line in fh:
                    lines.append(json.loads(line))
        except (OSError, ValueError):
            pass
        if lines and lines[0] == {"fingerprint": self.fingerprint}:
            self.recorded = len(lines) - 1
            return lines[1:]
        self._forget()
        return []

    def _forget(self) -> None:
        """Never leave an index describing shards that are about to be replaced."""
        for name in (INDEX, STATE):
            (self.dest / name).unlink(missing_ok=True)
        self.recorded = -1

    def _record(self, shards: list[dict], entry: dict) -> None:
        """Add a finished shard to the state file: appended when the file lists exactly `shards`,
        else the file is written afresh."""
        append = self.recorded == len(shards)
        lines = [entry] if append else [{"fingerprint": self.fingerprint}, *shards, entry]
        with (self.dest / STATE).open("a" if append else "w", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(line) + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
        self.recorded = len(shards) + 1

    # --- the run ------------------------------------------------------------------------------
    def run(self, make_samples: Callable[[], Iterator[Sample]]) -> dict:
        """Write every shard and shards.json. Returns the index document."""
        self.dest.mkdir(parents=True, exist_ok=True)
        for prefix in ("shard-", INDEX, STATE):
            remove_temporaries(self.dest, prefix)
        (self.dest / SPOOL).unlink(missing_ok=True)
        finished = self._finished()
        try:
            shards = self._write(self._ordered(make_samples()), finished)
        except ResumeMismatch:
            self._forget()
            if self.progress is not None:
                self.progress.reset()
            shards = self._write(self._ordered(make_samples()), [])
        self._remove_stale(len(shards))
        index = {"format": "webdataset", "samples": sum(s["samples"] for s in shards),
                 "shard_size": self.shard_size, "shuffle_seed": self.shuffle_seed,
                 "key": "img_id, zero-padded", "fingerprint": self.fingerprint, "shards": shards}
        atomic_write_json(self.dest / INDEX, index)
        (self.dest / STATE).unlink(missing_ok=True)
        return index

    def _ordered(self, samples: Iterator[Sample]) -> Iterator[Sample]:
        return samples if self.shuffle_seed is None else shuffled(samples, self.shuffle_seed, self.dest / SPOOL)

    def _write(self, samples: Iterator[Sample], finished: list[dict]) -> list[dict]:
        shards: list[dict] = []
        shard = None
        try:
            for sample in samples:
                texts = text_members(sample)
                # the size is planned from the file's size, so that a resumed run cuts where this one does
                size = member_size(sample.src.stat().st_size) + sum(member_size(len(d)) for _, d in texts)
                if shard is not None and shard.samples and shard.bytes + size > self.shard_size:
                    shards.append(self._close(shard, shards))
                    shard = None
                if shard is None:
                    shard = self._open(len(shards), sample.key, finished)
                if shard.writer is not None:
                    for name, data in [image_member(sample), *texts]:
                        shard.writer.add(name, data)
                shard.samples, shard.bytes, shard.last = shard.samples + 1, shard.bytes + size, sample.key
                if self.progress is not None:
                    self.progress.update(1)
            if shard is not None:
                shards.append(self._close(shard, shards))
        except BaseException:
            if shard is not None and shard.stack is not None:
                shard.stack.__exit__(*sys.exc_info())  # the unfinished shard's temporary file goes
            raise
        return shards

    def _open(self, index: int, first: str, finished: list[dict]) -> Shard:
        name = SHARD_NAME.format(index)
        done = finished[index] if index < len(finished) else None
        if done and done.get("first") == first and _size(self.dest / name) == done.get("bytes"):
            return Shard(index, first, skip=done)
        del finished[index:]  # this shard and those after it are written anew
        shard = Shard(index, first, skip=None, stack=ExitStack())
        shard.writer = shard.stack.enter_context(open_shard(self.dest / name))
        return shard

    def _close(self, shard: Shard, shards: list[dict]) -> dict:
        name = SHARD_NAME.format(shard.index)
        if shard.skip is not None:
            mine = (shard.samples, shard.last, shard.bytes)
            if mine != (shard.skip.get("samples"), shard.skip.get("last"), shard.skip.get("bytes")):
                raise ResumeMismatch(f"{name}: the finished shard no longer matches OUT")
            return shard.skip
        writer = shard.writer
        shard.stack.close()  # the shard appears under its name
        shard.stack = None
        if writer.bytes != shard.bytes:  # an image changed size while it was read: the plan no longer holds
            raise DatasetError(f"{name}: an image changed while it was exported; export again")
        entry = {"file": name, "samples": shard.samples, "bytes": writer.bytes, "sha256": writer.sha.hexdigest(),
                 "first": shard.first, "last": shard.last}
        self._record(shards, entry)
        return entry

    def _remove_stale(self, count: int) -> None:
        for entry in os.scandir(self.dest):
            match = SHARD_FILE.match(entry.name)
            if match and int(match.group(1)) >= count:
                os.unlink(entry.path)


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
