"""objects.jsonl read and written, and MVCap's metadata.json assembled from it and each object's
captions.json: the one code path for the broker, the captioner and `farm dataset build`.

metadata.json: [{"path": "./views/<uid>/000.png", "caption": ..., "obj_id": n, "img_id": n*stride+view}]
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from blender_addon.contract.layout import (
    CAPTIONS_JSON, METADATA_JSON, OBJECTS_JSONL, STRIDE_FIELD, confined_path, img_id, img_id_stride,
)
from blender_addon.rig.fileio import atomic_open, atomic_write_text


def read_objects(out_root: str | os.PathLike) -> list[dict]:
    """objects.jsonl as a list of dicts (empty when absent)."""
    path = Path(out_root) / OBJECTS_JSONL
    if not path.exists():
        return []
    objects = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {lineno} is not a JSON object")
            objects.append(obj)
    return objects


def write_objects(out_root: str | os.PathLike, objects: Iterable[dict]) -> Path:
    """Rewrite objects.jsonl atomically: one JSON object a line."""
    text = "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)
    return atomic_write_text(Path(out_root) / OBJECTS_JSONL, text)


def dataset_stride(objects: list[dict]) -> int:
    """The img_id stride of OUT: the one its objects.jsonl records (fixed by the farm at OUT's first
    submit); for an OUT from before strides were recorded, the one its ids were made with (from the
    largest view count). ValueError when the lines disagree."""
    recorded = list({repr(o[STRIDE_FIELD]): o[STRIDE_FIELD] for o in objects if o.get(STRIDE_FIELD) is not None}.values())
    if len(recorded) > 1:
        raise ValueError(f"{OBJECTS_JSONL}: {STRIDE_FIELD} differs between lines ({', '.join(map(repr, recorded))})")
    if recorded:
        stride = recorded[0]
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
            raise ValueError(f"{OBJECTS_JSONL}: {STRIDE_FIELD} {stride!r} is not a positive integer")
        return stride
    return img_id_stride(max((int(o.get("views") or 0) for o in objects), default=0))


def iter_metadata_records(out_root: str | os.PathLike, objects: list[dict] | None = None) -> Iterator[dict]:
    out_root = Path(out_root)
    objects = read_objects(out_root) if objects is None else objects
    stride = dataset_stride(objects)
    for obj in sorted(objects, key=lambda o: o["obj_id"]):
        if obj.get("status") != "done":
            continue
        captions_path = confined_path(out_root, f"{obj['out_rel']}/{CAPTIONS_JSON}")
        if not captions_path.exists():
            continue
        try:
            captions = json.loads(captions_path.read_text(encoding="utf-8"))["captions"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{captions_path}: not a captions file ({exc})") from None
        for entry in captions:
            if entry.get("caption") is None:
                continue  # a failed image is recorded in captions.json, not in metadata
            if int(entry["view"]) >= stride:  # its img_id would be the next object's
                raise ValueError(f"{captions_path}: view {entry['view']} is beyond the img_id stride {stride}")
            yield {
                "path": f"./{obj['out_rel']}/{entry['file']}",
                "caption": entry["caption"],
                "obj_id": int(obj["obj_id"]),
                "img_id": img_id(int(obj["obj_id"]), int(entry["view"]), stride),
            }


def write_metadata_records(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Stream records into a JSON array at `path`, one record a line, atomically (a temporary
    name in the same folder, then a rename). Nothing is held in memory. Returns the count."""
    count = 0
    encode = json.JSONEncoder(ensure_ascii=False).encode
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("[")
        batch: list[str] = []
        for record in records:
            batch.append(encode(record))
            if len(batch) == 4096:
                fh.write(("\n" if not count else ",\n") + ",\n".join(batch))
                count += len(batch)
                batch.clear()
        if batch:
            fh.write(("\n" if not count else ",\n") + ",\n".join(batch))
            count += len(batch)
        fh.write("\n]\n")
    return count


def write_metadata(out_root: str | os.PathLike, objects: list[dict] | None = None) -> int:
    """Rebuild OUT/metadata.json atomically from what is done and captioned (streamed); returns
    the record count."""
    return write_metadata_records(Path(out_root) / METADATA_JSON, iter_metadata_records(out_root, objects))


def iter_json_array(path: str | os.PathLike, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """The items of a top-level JSON array, decoded one at a time from chunks, so a metadata.json
    of millions of records is never held whole. Raises ValueError on malformed JSON."""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as fh:
        buf, pos, eof = fh.read(chunk_size), 0, False

        def more() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = fh.read(chunk_size)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
            return not eof

        def skip_ws() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or not more():
                    return buf[pos] if pos < len(buf) else ""

        if skip_ws() != "[":
            raise ValueError("not a JSON array")
        pos += 1
        first = True
        while True:
            ch = skip_ws()
            if ch == "]":
                pos += 1
                break
            if not first:
                if ch != ",":
                    raise ValueError(f"expected ',' or ']' near character {pos}")
                pos += 1
                skip_ws()
            while True:
                try:
                    item, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if more():
                        continue
                    raise ValueError(f"invalid JSON: {exc.msg}") from None
                if end >= len(buf) and more():
                    continue  # a number cut at the chunk's end: decode again with more text
                break
            pos = end
            first = False
            yield item
        if skip_ws():
            raise ValueError("extra data after the JSON array")
