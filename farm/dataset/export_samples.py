"""What every export writes per image: metadata.json's record joined with its object's
objects.jsonl line and its camera from transforms.json. The hf and webdataset exports share it.

A sample's `meta` (the webdataset `<key>.json`, the hf metadata.jsonl columns):
    obj_id, img_id, uid, category, source, view, path,
    transform_matrix   camera-to-world 4x4 (Blender/OpenGL camera axes, as in transforms.json)
    intrinsics         {fl_x, fl_y, cx, cy, w, h, camera_angle_x} in pixels / radians
Both camera fields are null for objects without transforms.json (MVImgNet's sampled frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from blender_addon.contract.layout import METADATA_JSON, TRANSFORMS_JSON, LayoutError, confined_path
from blender_addon.rig.transforms import TransformsError, read_transforms

from ..metadata import iter_json_array
from .common import IMAGE_NAME, DatasetError, load_objects

INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x")
KEY_DIGITS = 12  # img_ids as fixed-width keys sort in numeric order


@dataclass(frozen=True)
class Sample:
    key: str        # the zero-padded img_id: unique, no dots (a WebDataset key)
    rel: str        # the image's path inside OUT
    src: Path       # the image file
    caption: str
    meta: dict

    @property
    def ext(self) -> str:
        return self.src.suffix[1:].lower()


class ObjectFiles:
    """The folder and cameras of the object last asked for (records come object by object, so
    each folder is resolved and each transforms.json read once)."""

    def __init__(self, out: Path):
        self.out = out
        self.folder_rel: str | None = None
        self.folder: Path | None = None
        self.obj_id = None
        self.doc: dict | None = None
        self.frames: dict[str, dict] = {}

    def image(self, rel: str) -> Path:
        folder_rel, _, name = rel.rpartition("/")
        if not IMAGE_NAME.match(name):  # anything but a plain view file name gets the full check
            return confined_path(self.out, rel)
        if folder_rel != self.folder_rel:
            self.folder_rel, self.folder = folder_rel, confined_path(self.out, folder_rel)
        path = self.folder / name
        return confined_path(self.out, rel) if path.is_symlink() else path  # a link may point out of OUT

    def camera(self, obj: dict, file_name: str) -> dict:
        if obj.get("obj_id") != self.obj_id:
            self._load(obj)
        frame = self.frames.get(file_name)
        if self.doc is None or frame is None:
            return {"transform_matrix": None, "intrinsics": None}
        return {"transform_matrix": frame["transform_matrix"],
                "intrinsics": {k: self.doc.get(k) for k in INTRINSICS}}

    def _load(self, obj: dict) -> None:
        self.obj_id, self.doc, self.frames = obj.get("obj_id"), None, {}
        path = confined_path(self.out, f"{obj['out_rel']}/{TRANSFORMS_JSON}")
        if not path.is_file():
            return
        try:
            self.doc = read_transforms(path)
        except TransformsError as exc:
            raise DatasetError(f"{exc}; run farm dataset validate") from None
        self.frames = {str(f["file_path"]).rsplit("/", 1)[-1]: f for f in self.doc["frames"]}


def sample_from(record: dict, obj: dict, files: ObjectFiles) -> Sample:
    src = files.image(str(record["path"])[2:])
    if not src.is_file():
        raise DatasetError(f"metadata.json lists {record['path']}, which does not exist (run farm dataset validate)")
    match = IMAGE_NAME.match(src.name)
    meta = {
        "obj_id": record["obj_id"], "img_id": record["img_id"], "uid": obj.get("uid"),
        "category": obj.get("category"), "source": obj.get("source"),
        "view": int(match.group(1)) if match else None, "path": record["path"],
        **(files.camera(obj, src.name) if obj else {"transform_matrix": None, "intrinsics": None}),
    }
    return Sample(f"{int(record['img_id']):0{KEY_DIGITS}d}", str(record["path"])[2:], src, str(record["caption"]), meta)


def iter_samples(out: Path) -> Iterator[Sample]:
    """OUT's samples in metadata.json's order. DatasetError (one line) for what cannot be exported;
    a missing metadata.json or a bad objects.jsonl is refused at the call, before any sample."""
    metadata = out / METADATA_JSON
    if not metadata.is_file():
        raise DatasetError(f"{metadata}: missing; run `farm dataset build {out}` first")
    objects = {o.get("obj_id"): o for o in load_objects(out)}
    return _samples(out, metadata, objects)


def _samples(out: Path, metadata: Path, objects: dict) -> Iterator[Sample]:
    files = ObjectFiles(out)
    try:
        for record in iter_json_array(metadata):
            yield sample_from(record, objects.get(record["obj_id"]) or {}, files)
    except DatasetError:
        raise
    except (KeyError, TypeError, ValueError, LayoutError) as exc:
        raise DatasetError(f"{METADATA_JSON}: cannot export ({exc}); run farm dataset validate") from None
