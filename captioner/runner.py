"""`captioner run OUT`: caption every done object in OUT that has no captions.json yet, no broker.

metadata.json is rebuilt (farm.metadata.write_metadata, atomically) as captions appear and once at
the end. A run that is killed loses at most the objects in flight: captions.json files are written
whole, so a second run picks up exactly the objects that are still missing.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from blender_addon.contract.layout import CAPTIONS_JSON, OBJECTS_JSONL, confined_path

from farm.metadata import read_objects, write_metadata

from .engine import CaptionEngine, CaptionTask, ObjectResult, list_view_files


MAX_FAILURES_LISTED = 100


class RunError(ValueError):
    """OUT is not an output folder we can caption (one-line message)."""


def captions_complete(path: Path, files: list[str], retry_failed: bool = False,
                      images_dir: Path | None = None) -> bool:
    """A captions.json that covers every view file, is not older than them (a re-render makes it
    stale) and, with retry_failed, has no failed image."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if images_dir is not None:
            written = path.stat().st_mtime
            if any((images_dir / f).stat().st_mtime > written for f in files if (images_dir / f).exists()):
                return False
        entries = doc["captions"]
        covered = {e["file"] for e in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not set(files) <= covered:
        return False
    if retry_failed and any(e.get("caption") is None for e in entries):
        return False
    return True


def pending_tasks(out_root: Path, retry_failed: bool = False) -> list[CaptionTask]:
    """Done objects of objects.jsonl whose captions.json is missing or incomplete, by obj_id."""
    if not (out_root / OBJECTS_JSONL).exists():
        raise RunError(f"{out_root} has no {OBJECTS_JSONL}; is it a farm output folder?")
    try:
        objects = read_objects(out_root)
    except ValueError as exc:
        raise RunError(f"{out_root / OBJECTS_JSONL} is not valid JSON lines: {exc}") from None
    tasks: list[CaptionTask] = []
    for obj in sorted(objects, key=lambda o: o.get("obj_id", 0)):
        if obj.get("status") != "done":
            continue
        folder = confined_path(out_root, obj["out_rel"])
        files = list_view_files(folder)
        if captions_complete(folder / CAPTIONS_JSON, files, retry_failed, images_dir=folder):
            continue
        tasks.append(CaptionTask(uid=str(obj["uid"]), category=str(obj.get("category") or ""), out_root=out_root,
                                 out_rel=obj["out_rel"], files=files, obj_id=obj.get("obj_id")))
    return tasks


def run_out(out_root: str | Path, make_engine: Callable[..., CaptionEngine], *, retry_failed: bool = False,
            metadata_every_s: float = 2.0, log: Callable[[str], None] = lambda s: None) -> dict:
    """Caption what is missing in OUT, keep metadata.json current, and return the engine's stats."""
    out_root = Path(out_root).resolve()
    tasks = pending_tasks(out_root, retry_failed)
    images = sum(len(t.files) for t in tasks)
    log(f"{len(tasks)} object(s), {images} image(s) to caption in {out_root}")
    last_write = [time.monotonic()]
    failures: list[str] = []  # "<out_rel>: <reason>", the first MAX_FAILURES_LISTED objects with a failed image
    # A bar (images done, rate, ETA) on a terminal; logs and pipes get the per-object lines only.
    bar = tqdm(total=images, unit="img", desc="captioning", disable=not sys.stderr.isatty(), file=sys.stderr)

    def on_done(result: ObjectResult) -> None:
        status = result.error or f"{result.captioned} captioned, {result.failed} failed, {result.forced} forced prefix"
        if result.failure() and len(failures) < MAX_FAILURES_LISTED:
            failures.append(f"{result.task.out_rel}: {result.failure()}")
        bar.update(len(result.task.files))
        bar.set_postfix(failed=engine.stats.failed, refresh=False)
        if bar.disable:
            log(f"  {result.task.out_rel}: {status}")
        elif result.error or result.failed:
            bar.write(f"  {result.task.out_rel}: {status}", file=sys.stderr)
        if time.monotonic() - last_write[0] >= metadata_every_s:
            try:
                write_metadata(out_root)
            except (OSError, ValueError) as exc:  # retried at the end
                log(f"metadata.json not rewritten yet: {exc}")
            last_write[0] = time.monotonic()

    engine = make_engine(on_object_done=on_done)
    try:
        for task in tasks:
            engine.submit(task)
        engine.run_until_idle()
    finally:
        engine.close()
        bar.close()
    try:
        write_metadata(out_root)
    except (OSError, ValueError) as exc:
        raise RunError(f"metadata.json: {exc}") from None
    stats = engine.stats.as_dict()
    stats["objects_pending"] = len(tasks)
    stats["failures"] = failures
    return stats
