"""The broker's files in each output folder: objects.jsonl (from the store) and metadata.json
(after captions), rewritten when due, never inside the loop's transaction.

objects.jsonl is rewritten after each finished object when the farm is calm; under load at most
once a second, and always when a job finishes.
"""
from __future__ import annotations

import logging

from ..store import Store

log = logging.getLogger("farm.broker")

EXPORT_EVERY_S = 1.0


class OutputFiles:
    """What is stale, and writing it."""

    def __init__(self, store: Store):
        self.store = store
        self.metadata_dirty: set[str] = set()  # out_roots whose metadata.json is stale
        self.last_export = 0.0

    def mark_metadata(self, out_root: str) -> None:
        """A caption finished under `out_root`: its metadata.json is stale."""
        self.metadata_dirty.add(out_root)

    def after_turn(self, busy: bool, now: float) -> None:
        """Write what is stale when due (see the module doc). `busy`: the turn had messages."""
        stale = self.store.exports.dirty_roots or self.metadata_dirty
        if stale and (self.store.finished_jobs or not busy or now - self.last_export >= EXPORT_EVERY_S):
            try:
                self.store.flush_exports()
            except (OSError, ValueError) as exc:  # ValueError: a path no file system takes (a NUL)
                log.warning("objects.jsonl export failed: %s", exc)
            self._write_metadata()
            self.last_export = now

    def write_final(self) -> None:
        """Everything stale, as the broker closes."""
        try:
            self.store.flush_exports()
            self._write_metadata()
        except (OSError, ValueError) as exc:  # pragma: no cover
            log.warning("final export failed: %s", exc)

    def _write_metadata(self) -> None:
        if not self.metadata_dirty:
            return
        from ..metadata import write_metadata

        roots, self.metadata_dirty = self.metadata_dirty, set()
        for root in roots:
            try:
                write_metadata(root)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("metadata.json for %s failed: %s", root, exc)
