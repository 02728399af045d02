"""The caption engine: dynamic batches across objects, category consistency, per-object output.

Objects go in with `submit(task)`. Their images are decoded ahead on threads (images.Prefetcher);
each `step()` takes the next batch of decoded images, whichever objects they belong to, captions
them on the guided route, re-captions on the forced-prefix route those that do not name their
category, and writes an object's captions.json (atomically) the moment its last image is done.
"""
from __future__ import annotations

import functools
import glob
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from blender_addon.contract.categories import names_category
from blender_addon.contract.layout import CAPTIONS_JSON, check_identifier, confined_path
from blender_addon.rig.errors import one_line
from blender_addon.rig.fileio import atomic_write_json

from .images import Decoded, Prefetcher
from .models import Backend
from .prompts import ROUTE_FORCED, ROUTE_GUIDED, forced_prefix, render_prompt

_VIEW_FILE = re.compile(r"^(\d+)\.(png|jpg|jpeg)$", re.IGNORECASE)


@functools.cache
def library_versions() -> dict[str, str]:
    """Provenance for captions.json: the dataset card reports these."""
    import torch
    import transformers

    return {"transformers_version": transformers.__version__, "torch_version": torch.__version__}


def view_index(file_name: str) -> int:
    """000.png -> 0. Views are named by their index (blender_addon.contract.layout.view_filename)."""
    match = _VIEW_FILE.match(file_name)
    if not match:
        raise ValueError(f"file {file_name!r} is not a view image (NNN.png or NNN.jpg)")
    return int(match.group(1))


def list_view_files(folder: Path) -> list[str]:
    """The view images in an object's folder, in view order."""
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.iterdir() if p.is_file() and _VIEW_FILE.match(p.name)]
    return sorted(names, key=view_index)


@dataclass
class CaptionTask:
    """One object to caption. task_id/attempt_id come from the broker (None for `captioner run`)."""

    uid: str
    category: str
    out_root: Path
    out_rel: str
    files: list[str]
    obj_id: int | None = None
    task_id: int | None = None
    attempt_id: int | None = None
    model: str | None = None  # the caption model the job asks for (farm submit --caption-model)

    @property
    def folder(self) -> Path:
        return confined_path(self.out_root, self.out_rel)

    @property
    def captions_path(self) -> Path:
        return self.folder / CAPTIONS_JSON


@dataclass
class ObjectResult:
    task: CaptionTask
    path: Path | None  # captions.json, None when the object failed as a whole
    captioned: int = 0
    failed: int = 0
    forced: int = 0
    error: str | None = None  # why the object failed as a whole (no captions.json written)
    image_error: str | None = None  # the first failed image's reason, when some failed

    def failure(self) -> str | None:
        """One line on what failed in this object, or None when every image was captioned."""
        if self.error:
            return self.error
        return f"{self.failed} image(s) failed, e.g. {self.image_error}" if self.failed else None


@dataclass
class EngineStats:
    images: int = 0
    captioned: int = 0
    failed: int = 0
    forced: int = 0
    batches: int = 0
    objects: int = 0
    failed_objects: int = 0  # objects with no caption at all (every image failed, or a bad task)
    generate_s: float = 0.0
    decode_wait_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict:
        wall = time.perf_counter() - self.started
        return {"images": self.images, "captioned": self.captioned, "failed": self.failed, "forced": self.forced,
                "batches": self.batches, "objects": self.objects,
                "failed_objects": self.failed_objects, "generate_s": round(self.generate_s, 3),
                "decode_wait_s": round(self.decode_wait_s, 3), "wall_s": round(wall, 3)}


@dataclass
class _Pending:
    task: CaptionTask
    prompt: str
    prefix: str
    remaining: int
    entries: dict[int, dict] = field(default_factory=dict)


class CaptionEngine:
    def __init__(self, backend: Backend, *, prompt_template: str, batch_size: int = 8,
                 background: tuple[int, int, int] = (255, 255, 255), decode_threads: int = 4,
                 prefetch_depth: int | None = None, consistency: bool = True, preset: str | None = None,
                 prompt_source: str | None = None,
                 on_object_done: Callable[[ObjectResult], None] | None = None):
        self.backend = backend
        self.prompt_template = prompt_template
        self.batch_size = max(1, int(batch_size))
        self.consistency = consistency
        self.preset = preset
        self.prompt_source = prompt_source
        self.background = tuple(background)
        self.on_object_done = on_object_done
        depth = prefetch_depth or max(2 * self.batch_size, 16)
        self.prefetcher = Prefetcher(threads=decode_threads, depth=depth, background=background)
        self.stats = EngineStats()
        self._pending: dict[int, _Pending] = {}
        self._next_key = 0

    # --- input -----------------------------------------------------------------------------
    def submit(self, task: CaptionTask) -> None:
        """Queue an object's images. A bad task (path escape, bad file names) fails as a whole."""
        try:
            folder = task.folder
            views = [(view_index(check_identifier(f, "file")), f) for f in task.files]
        except ValueError as exc:
            self._finish_failed(task, one_line(exc))
            return
        for stale in glob.glob(str(folder / f".{CAPTIONS_JSON}.*.tmp")):
            try:  # a temporary file left by a killed captioner
                os.unlink(stale)
            except OSError:
                pass
        key = self._next_key
        self._next_key += 1
        state = _Pending(task, render_prompt(self.prompt_template, task.category), forced_prefix(task.category),
                         remaining=len(views))
        self._pending[key] = state
        if not views:
            self._write(key)
            return
        self.prefetcher.add(((key, view, name), folder / name) for view, name in views)

    def pending_images(self) -> int:
        return self.prefetcher.pending()

    def pending_objects(self) -> int:
        return len(self._pending)

    # --- work ------------------------------------------------------------------------------
    def step(self) -> int:
        """Caption the next batch of decoded images (blocking on decoding only if needed)."""
        wait_before = self.prefetcher.stats.wait_s
        batch = self.prefetcher.take(self.batch_size)
        self.stats.decode_wait_s += self.prefetcher.stats.wait_s - wait_before
        if not batch:
            return 0
        good: list[Decoded] = []
        for dec in batch:
            if dec.error:
                self._record(dec, None, None, dec.error)
            else:
                good.append(dec)
        if good:
            self._caption(good)
        self.stats.images += len(batch)
        self.stats.batches += 1
        self._flush_done()
        return len(batch)

    def run_until_idle(self) -> None:
        while self.prefetcher.pending():
            self.step()
        self._flush_done()

    def serve_queue(self, inbox: "queue.Queue[CaptionTask]", stop: threading.Event) -> None:
        """Engine loop for the daemon: take tasks from `inbox`, caption until `stop` is set."""
        while not stop.is_set():
            while True:
                try:
                    self.submit(inbox.get_nowait())
                except queue.Empty:
                    break
            if self.prefetcher.pending():
                self.step()
            else:
                try:
                    self.submit(inbox.get(timeout=0.1))
                except queue.Empty:
                    pass

    def close(self) -> None:
        self.prefetcher.close()

    # --- internals -------------------------------------------------------------------------
    def _generate(self, decs: list[Decoded], prefixes: list[str] | None) -> list[str | Exception]:
        """Generate for a batch; on an error split it, so that one bad input fails alone."""
        images = [d.image for d in decs]
        prompts = [self._pending[d.item[0]].prompt for d in decs]
        start = time.perf_counter()
        try:
            out: list[str | Exception] = list(self.backend.generate(images, prompts, prefixes))
            self.stats.generate_s += time.perf_counter() - start
            return out
        except Exception as exc:  # noqa: BLE001 - recorded per image below
            self.stats.generate_s += time.perf_counter() - start
            if len(decs) == 1:
                return [exc]
            half = len(decs) // 2
            return (self._generate(decs[:half], prefixes[:half] if prefixes else None)
                    + self._generate(decs[half:], prefixes[half:] if prefixes else None))

    def _caption(self, decs: list[Decoded]) -> None:
        guided = self._generate(decs, None)
        retry: list[Decoded] = []
        for dec, cap in zip(decs, guided):
            if isinstance(cap, Exception):
                self._record(dec, None, None, f"captioning failed: {one_line(cap)}")
            elif self.consistency and not names_category(cap, self._pending[dec.item[0]].task.category):
                retry.append(dec)
            else:
                self._record(dec, cap, ROUTE_GUIDED, None)
        if not retry:
            return
        prefixes = [self._pending[d.item[0]].prefix for d in retry]
        forced = self._generate(retry, prefixes)
        for dec, cap in zip(retry, forced):
            if isinstance(cap, Exception):
                self._record(dec, None, None, f"captioning failed: {one_line(cap)}")
            else:
                self.stats.forced += 1
                self._record(dec, cap, ROUTE_FORCED, None)

    def _record(self, dec: Decoded, caption: str | None, route: str | None, error: str | None) -> None:
        key, view, name = dec.item
        state = self._pending[key]
        state.entries[view] = {"view": view, "file": name, "caption": caption, "route": route, "error": error}
        state.remaining -= 1
        if caption is None:
            self.stats.failed += 1
        else:
            self.stats.captioned += 1

    def _flush_done(self) -> None:
        for key in [k for k, s in self._pending.items() if s.remaining <= 0]:
            self._write(key)

    def _write(self, key: int) -> None:
        state = self._pending.pop(key)
        task = state.task
        entries = [state.entries[v] for v in sorted(state.entries)]
        doc = {"uid": task.uid, "category": task.category, "model": self.backend.name, "preset": self.preset,
               "prompt": state.prompt, "prompt_source": self.prompt_source, "consistency": self.consistency,
               "background": "#%02x%02x%02x" % self.background, **library_versions(), "captions": entries}
        result = ObjectResult(task, None,
                              captioned=sum(e["caption"] is not None for e in entries),
                              failed=sum(e["caption"] is None for e in entries),
                              forced=sum(e["route"] == ROUTE_FORCED for e in entries),
                              image_error=next((e["error"] for e in entries if e["caption"] is None), None))
        if entries and not result.captioned:
            # Nothing to keep: the object fails as a whole with the first reason, and an earlier
            # captions.json (with captions) is left as it was.
            result.error = f"all {len(entries)} image(s) failed: {result.image_error}"
        else:
            try:
                result.path = atomic_write_json(task.captions_path, doc)
            except OSError as exc:
                result.error = f"cannot write {CAPTIONS_JSON}: {one_line(exc)}"
        self._done(result)

    def _finish_failed(self, task: CaptionTask, error: str) -> None:
        self._done(ObjectResult(task, None, error=error))

    def _done(self, result: ObjectResult) -> None:
        self.stats.objects += 1
        self.stats.failed_objects += result.error is not None
        if self.on_object_done:
            self.on_object_done(result)
