"""Import a mesh asset (GLB, glTF, OBJ, FBX, PLY, STL, .blend) with the operators of the running
Blender (3.4 to 5.0), and check it before and after: a bad file gets a one-line AssetError instead
of an importer traceback."""
from __future__ import annotations

import ctypes
import importlib
import json
import logging
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Iterable

import bpy

from ..rig.asset_refs import asset_roots
from ..rig.assets import MESH_EXTENSIONS
from ..rig.draco import draco_compressed, no_decoder_message
from .build import _ASSET_DATA as ASSET_DATA
from .confine import confined_source, data_snapshot, refuse_outside
from .errors import AssetError

log = logging.getLogger(__name__)

# Object types that carry renderable surface geometry.
GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}
# Objects an asset may bring that are not part of the object: the rig supplies camera and lights.
_DROP_TYPES = {"CAMERA", "LIGHT", "LIGHT_PROBE", "SPEAKER"}


# --- checks before the importer runs --------------------------------------------------------------
def _head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip().lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in text[:256]


def _check_glb(path: Path, size: int) -> None:
    head = _head(path, 20)
    if head[:4] != b"glTF":
        if _looks_like_html(_head(path)):
            raise AssetError(f"{path.name}: not a GLB file, it is an HTML page (a failed download?)")
        raise AssetError(f"{path.name}: not a GLB file (magic bytes {head[:4]!r}, expected b'glTF')")
    if len(head) < 20:
        raise AssetError(f"{path.name}: truncated GLB ({size} bytes, shorter than its 20-byte header)")
    version, declared = struct.unpack_from("<II", head, 4)
    if version != 2:
        raise AssetError(f"{path.name}: GLB version {version} is not supported (only glTF 2.0)")
    if declared > size:
        raise AssetError(f"{path.name}: truncated GLB (header says {declared} bytes, file has {size})")
    json_len, json_type = struct.unpack_from("<I4s", head, 12)
    if json_type != b"JSON" or 20 + json_len > size:
        raise AssetError(f"{path.name}: corrupt GLB (first chunk is not a complete JSON chunk)")
    with open(path, "rb") as fh:
        fh.seek(20)
        raw = fh.read(json_len)
        pos = 20 + json_len
        while pos + 8 <= declared:  # every further chunk (BIN) must fit in the file
            fh.seek(pos)
            chunk_len, _ = struct.unpack("<I4s", fh.read(8))
            if pos + 8 + chunk_len > size:
                raise AssetError(f"{path.name}: truncated GLB (a binary chunk runs past the end of the file)")
            pos += 8 + ((chunk_len + 3) & ~3)
    _parse_gltf_json(path, raw)


def _parse_gltf_json(path: Path, raw: bytes) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AssetError(f"{path.name}: corrupt glTF JSON ({exc})") from None
    if not isinstance(doc, dict) or "asset" not in doc:
        raise AssetError(f"{path.name}: not a glTF document (no 'asset' section)")
    version = str(doc["asset"].get("version", "")) if isinstance(doc["asset"], dict) else ""
    if not version.startswith("2"):
        raise AssetError(f"{path.name}: glTF version {version or '?'} is not supported (only glTF 2.0)")
    return doc


def _check_gltf(path: Path) -> None:
    head = _head(path)
    if _looks_like_html(head):
        raise AssetError(f"{path.name}: not a glTF file, it is an HTML page (a failed download?)")
    _parse_gltf_json(path, path.read_bytes())


def _check_blend(path: Path) -> None:
    head = _head(path, 16)
    # Plain, gzip (<= 2.79, 3.x optional) or zstd (3.0+) compressed .blend files.
    if not (head.startswith(b"BLENDER") or head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd"):
        if _looks_like_html(_head(path)):
            raise AssetError(f"{path.name}: not a .blend file, it is an HTML page (a failed download?)")
        raise AssetError(f"{path.name}: not a .blend file (bad magic bytes)")


def check_file(path: str | os.PathLike) -> Path:
    """Cheap checks that need no importer: exists, not empty, the right kind of file."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: file not found")
    ext = path.suffix.lower()
    if ext not in MESH_EXTENSIONS:
        raise AssetError(f"{path.name}: unsupported file type '{ext}'; supported: {', '.join(MESH_EXTENSIONS)}")
    size = path.stat().st_size
    if size == 0:
        raise AssetError(f"{path.name}: file is empty (0 bytes)")
    if ext == ".glb":
        _check_glb(path, size)
    elif ext == ".gltf":
        _check_gltf(path)
    elif ext == ".blend":
        _check_blend(path)
    elif _looks_like_html(_head(path)):
        raise AssetError(f"{path.name}: not a {ext[1:].upper()} file, it is an HTML page (a failed download?)")
    return path


# --- operators --------------------------------------------------------------------------------------
def _op(idname: str):
    """The bpy.ops operator for 'module.name', or None if this Blender lacks it."""
    module, name = idname.split(".")
    op = getattr(getattr(bpy.ops, module), name)
    try:
        op.get_rna_type()
    except (KeyError, AttributeError):
        return None
    return op


def _ensure_addon(module: str) -> None:
    import addon_utils

    loaded, enabled = addon_utils.check(module)
    if not enabled:
        addon_utils.enable(module, default_set=True)


# Preferred operator first: the C++ importers replaced the Python add-ons (OBJ and PLY in 4.0,
# STL in 4.2), and the old ones are gone from newer versions.
_OPERATORS = {
    ".glb": [("import_scene.gltf", "io_scene_gltf2")],
    ".gltf": [("import_scene.gltf", "io_scene_gltf2")],
    ".obj": [("wm.obj_import", None), ("import_scene.obj", "io_scene_obj")],
    ".fbx": [("import_scene.fbx", "io_scene_fbx")],
    ".ply": [("wm.ply_import", None), ("import_mesh.ply", "io_mesh_ply")],
    ".stl": [("wm.stl_import", None), ("import_mesh.stl", "io_mesh_stl")],
}


def _resolve_operator(ext: str):
    for idname, addon in _OPERATORS[ext]:
        op = _op(idname)
        if op is None and addon:
            try:
                _ensure_addon(addon)
            except Exception:  # the add-on does not exist in this version; try the next operator
                continue
            op = _op(idname)
        if op is not None:
            return idname, op
    raise AssetError(f"no importer for '{ext}' in Blender {bpy.app.version_string}")


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
_FRAME_LINE = re.compile(r'^File "([^"]+)", line \d+, in (\S+)')


def operator_error_line(exc: BaseException) -> str:
    """The informative line of an operator's RuntimeError.

    Blender wraps an importer's traceback in 'Error: Python: Traceback ...' and may cut it short,
    so take the exception line, or else the innermost frame that is left.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln.removeprefix("Error: ") for ln in lines if not ln.startswith("Location:")]
    for ln in reversed(lines):
        if _EXC_LINE.match(ln):
            return ln
    frames = [(i, _FRAME_LINE.match(ln)) for i, ln in enumerate(lines)]
    frames = [(i, m) for i, m in frames if m]
    if frames:
        i, m = frames[-1]
        code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
        where = f"{os.path.basename(m.group(1))}, in {m.group(2)}"
        return f"the importer raised an exception ({where}: {code[:120]})" if code else \
            f"the importer raised an exception ({where})"
    for ln in reversed(lines):
        if not ln.startswith(("Python: Traceback", "Traceback", "^", "~")):
            return ln
    return type(exc).__name__


def _fbx_light_shim() -> None:
    """Blender 5.0's FBX importer still sets light.cycles.cast_shadow, which 5.0 removed, so any
    FBX with a light fails to import. A stand-in property lets it finish (the light is dropped)."""
    probe = bpy.data.lights.new("mvcap_probe", "POINT")
    try:
        settings = type(getattr(probe, "cycles", None))  # the Cycles add-on's PropertyGroup class
        if hasattr(settings, "bl_rna") and "cast_shadow" not in settings.bl_rna.properties:
            settings.cast_shadow = bpy.props.BoolProperty(name="Cast Shadow (FBX import shim)", default=True)
    finally:
        bpy.data.lights.remove(probe)


def _lacks_numpy_bool(exc: Exception) -> bool:
    """Blender 3.4's glTF importer uses np.bool, which numpy 1.24 removed (Debian 12's numpy is 1.24)."""
    text = str(exc)
    return "numpy" in text and "attribute 'bool'" in text


# Where the glTF add-on finds its Draco library: 4.0 and later, then 3.x.
_DRACO_MODULES = ("io_scene_gltf2.io.com.draco", "io_scene_gltf2.io.com.gltf2_io_draco_compression_extension")


def _draco_decoder_loads() -> bool:
    """Whether this Blender's glTF importer can load its Draco library (Debian's build has none,
    and its importer would fail with a traceback). True when the add-on's layout is unknown:
    the importer then runs, and its failure is reported."""
    for name in _DRACO_MODULES:
        try:
            library = importlib.import_module(name).dll_path()
        except Exception:  # not this version's layout
            continue
        try:
            ctypes.CDLL(str(library))
        except OSError:
            return False
        return True
    return True


def _run_operator(idname: str, op, path: Path):
    data_before = id_snapshot()
    try:
        return op(filepath=str(path))
    except Exception as exc:
        if not (idname == "import_scene.gltf" and _lacks_numpy_bool(exc)):
            raise
    # np.bool is used only to guess flat faces from the normals; smooth shading with the file's
    # own normals looks the same and needs no np.bool.
    remove_new_data(data_before)
    log.warning("%s: this Blender's glTF importer needs numpy < 1.24 to guess flat faces; "
                "imported with smooth shading and the file's normals", path.name)
    return op(filepath=str(path), import_shading="SMOOTH")


def _run_importer(path: Path) -> None:
    ext = path.suffix.lower()
    idname, op = _resolve_operator(ext)
    if ext == ".fbx":
        _fbx_light_shim()
    if ext in (".glb", ".gltf") and draco_compressed(path) and not _draco_decoder_loads():
        raise AssetError(no_decoder_message(path.name))
    try:
        result = _run_operator(idname, op, path)
    except Exception as exc:  # operators raise RuntimeError with the report text
        reason = operator_error_line(exc)
        if "draco" in str(exc).lower():  # a layout of the glTF add-on that the check above does not know
            raise AssetError(no_decoder_message(path.name)) from None
        raise AssetError(f"{path.name}: import failed ({idname}): {reason}") from None
    if "FINISHED" not in result:
        raise AssetError(f"{path.name}: import was cancelled by {idname}")


def _append_blend(path: Path) -> None:
    """Append every object of a .blend into the current scene (no operator: works headless)."""
    try:
        with bpy.data.libraries.load(str(path), link=False) as (data_from, data_to):
            data_to.objects = list(data_from.objects)
    except Exception as exc:
        raise AssetError(f"{path.name}: cannot read .blend: {operator_error_line(exc)}") from None
    collection = bpy.context.scene.collection
    for obj in data_to.objects:
        if obj is not None and obj.name not in collection.objects:
            collection.objects.link(obj)
            if not obj.hide_render:
                # hidden in the viewport but rendered: measure it too (the depsgraph skips it)
                obj.hide_viewport = False


def id_snapshot() -> set[int]:
    """Every data block an import can make, as it is now."""
    return {block.as_pointer() for kind in ASSET_DATA for block in getattr(bpy.data, kind, ())}


def remove_new_data(before: set[int]) -> None:
    """Remove the data blocks made since `before`: what a failed import left half-built."""
    new = [block for kind in ASSET_DATA for block in getattr(bpy.data, kind, ()) if block.as_pointer() not in before]
    if new:
        bpy.data.batch_remove(new)


# --- checks after the importer ran ------------------------------------------------------------------
def face_count(objects) -> int:
    """Faces of every geometry object, as evaluated (modifiers, curves and text included)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    total = 0
    for obj in objects:
        if obj.type == "MESH" and not obj.modifiers:
            total += len(obj.data.polygons)
        elif obj.type in GEOMETRY_TYPES:
            ob_eval = obj.evaluated_get(depsgraph)
            mesh = ob_eval.to_mesh()
            total += len(mesh.polygons) if mesh is not None else 0
            ob_eval.to_mesh_clear()
    return total


# What the latest import_asset refused, or found missing while it built a confined copy.
_import_notes: list[str] = []


def missing_textures() -> list[str]:
    """Images the asset refers to that have no pixels: a missing file or unreadable data, and
    textures refused because they lie outside the asset's folder ('<path> (refused: ...)').

    The asset still renders (Blender shows such textures as magenta); the list is reported.
    """
    missing = list(_import_notes)
    for img in bpy.data.images:
        if img.source not in {"FILE", "SEQUENCE", "TILED"}:
            continue  # render results, viewer nodes and generated images have no file
        label = img.filepath or img.name
        if not img.packed_file:
            abspath = bpy.path.abspath(img.filepath) if img.filepath else ""
            if not abspath or not os.path.isfile(abspath):
                missing.append(label)
                continue
        # Reading .size loads the image; (0, 0) means the data could not be decoded.
        if tuple(img.size) == (0, 0):
            missing.append(f"{label} (unreadable)")
    return sorted(set(missing))


def import_asset(path: str | os.PathLike, allowed_dirs: Iterable[str | os.PathLike] = ()) -> list:
    """Import an asset into the current scene and return its new objects.

    Raises AssetError for files that are empty, of the wrong kind, truncated, fail to import or
    hold no faces. Cameras and lights that come with the asset are removed (the rig provides them).
    The asset reads only files inside its folder or `allowed_dirs` (see confine.py).
    """
    _import_notes.clear()
    path = check_file(path).resolve()
    blocks_before = id_snapshot()
    try:
        return _import_checked(path, allowed_dirs)
    except BaseException:
        remove_new_data(blocks_before)  # a failed import leaves nothing behind in the scene
        raise


def _import_checked(path: Path, allowed_dirs) -> list:
    roots = asset_roots(path, allowed_dirs)
    before = {obj.as_pointer() for obj in bpy.data.objects}
    data_before = data_snapshot()
    with tempfile.TemporaryDirectory(prefix="mvcap-import-") as staging:
        source, notes = confined_source(path, roots, Path(staging))
        if path.suffix.lower() == ".blend":
            _append_blend(source)
        else:
            _run_importer(source)
    _import_notes.extend(notes + refuse_outside(data_before, roots, path.name))
    scene_objects = {obj.as_pointer() for obj in bpy.context.scene.objects}
    # only what is in the scene renders (importers may also make unlinked helper objects)
    new = [obj for obj in bpy.data.objects if obj.as_pointer() not in before and obj.as_pointer() in scene_objects]
    drop = [obj for obj in new if obj.type in _DROP_TYPES and not obj.children]
    if drop:
        dropped = {obj.as_pointer() for obj in drop}
        new = [obj for obj in new if obj.as_pointer() not in dropped]
        bpy.data.batch_remove(drop)
    geometry = [obj for obj in new if obj.type in GEOMETRY_TYPES]
    if not geometry:
        kinds = sorted({obj.type.lower() for obj in new}) or ["nothing"]
        raise AssetError(f"{path.name}: no mesh geometry in the file (imported: {', '.join(kinds)})")
    if face_count(geometry) == 0:
        raise AssetError(f"{path.name}: the meshes have no faces (points or edges only), nothing to render")
    return new
