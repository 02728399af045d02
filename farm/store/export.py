"""OUT/objects.jsonl kept in step with the store, cheaply.

Each object's line is cached per output folder; an export encodes again only the objects changed
since the last one (`touch`), or every object of a folder after a bulk change (`invalidate`).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from blender_addon.rig.fileio import atomic_write_text

from blender_addon.contract.layout import OBJECTS_JSONL, STRIDE_FIELD


def object_record(r: sqlite3.Row) -> dict:
    """One objects.jsonl record from an `objects` row."""
    result = json.loads(r["result"] or "{}") or {}
    return {
        "obj_id": r["obj_id"], "uid": r["uid"], "source": r["source"], "category": r["category"],
        "asset": r["asset"], "out_rel": r["out_rel"], "views": r["views"], "status": r["status"],
        "error": r["error"], "attempts": r["attempts"],
        "missing_textures": json.loads(r["missing_textures"] or "[]"),
        "quality": json.loads(r["quality"] or "[]"),
        # render settings the worker's Blender could not honour (e.g. no OIDN: not denoised)
        "warnings": list(result.get("warnings") or []),
        # what rendered it: {"backend": "OPTIX" | "CUDA" | "CPU" | ..., "gpu": model or null}
        "device": result.get("device"),
        # "folder": the category is the asset's parent folder name (no --categories entry)
        **({"category_from": r["category_from"]} if r["category_from"] else {}),
    }


class ObjectsExport:
    """The objects.jsonl line cache and the set of output folders whose file is stale."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.dirty_roots: set[str] = set()  # out_roots whose objects.jsonl is stale
        self._lines: dict[str, dict[int, str]] = {}  # out_root -> obj_id -> objects.jsonl line
        self._changed: dict[str, set[int]] = {}  # out_root -> object row ids to encode again

    def touch(self, out_root: str, object_id: int) -> None:
        """One object changed."""
        self.dirty_roots.add(out_root)
        if out_root in self._lines:
            self._changed.setdefault(out_root, set()).add(object_id)

    def invalidate(self, out_root: str) -> None:
        """Many objects changed: the next export reads them all."""
        self.dirty_roots.add(out_root)
        self._lines.pop(out_root, None)
        self._changed.pop(out_root, None)

    def write(self, out_root: str) -> Path:
        """Rewrite OUT/objects.jsonl atomically from the store. Lines are cached per object and
        only objects changed since the last export are encoded again."""
        cache = self._lines.get(out_root)
        if cache is None:
            cache = {}
            rows = self.db.execute("SELECT * FROM objects WHERE out_root = ?", (out_root,)).fetchall()
        else:
            rows = self._changed_rows(out_root)
        stride = self.db.execute("SELECT img_id_stride FROM outputs WHERE out_root = ?", (out_root,)).fetchone()
        ids = {STRIDE_FIELD: stride[0]} if stride else {}  # fixed per OUT at its first submit
        for r in rows:
            cache[r["obj_id"]] = json.dumps({**object_record(r), **ids}, ensure_ascii=False) + "\n"
        self._lines[out_root] = cache
        self._changed.pop(out_root, None)
        text = "".join(cache[k] for k in sorted(cache))
        return atomic_write_text(Path(out_root) / OBJECTS_JSONL, text)

    def _changed_rows(self, out_root: str) -> list[sqlite3.Row]:
        ids = sorted(self._changed.pop(out_root, set()))
        rows = []
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows += self.db.execute(f"SELECT * FROM objects WHERE id IN ({','.join('?' * len(part))})",
                                    part).fetchall()
        return rows

    def flush(self) -> None:
        """Write every stale objects.jsonl; a folder that fails stays stale (and the error is raised)."""
        roots, self.dirty_roots = self.dirty_roots, set()
        for root in roots:
            try:
                self.write(root)
            except OSError:
                self.dirty_roots.add(root)
                raise
