"""Normalise an imported asset: centre its world-space bounding box at the origin and scale it into
the unit box (largest side 1) or the unit sphere.

Every root of the asset's hierarchies is parented to one empty that carries the scale and offset,
so GLB node trees, armatures and animations keep their own transforms untouched.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import bpy
import numpy as np
from mathutils import Matrix

from .errors import AssetError
from .importers import GEOMETRY_TYPES

ROOT_NAME = "mvcap_normalize"


@dataclass
class Normalization:
    """p_normalised = scale * p_world + offset, applied to the asset's world-space geometry."""

    scale: float
    offset: list[float]
    radius: float  # bounding-sphere radius about the origin, after normalisation
    mode: str = "unit_box"
    frame: int = 0
    bbox_min: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # after normalisation
    bbox_max: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def to_dict(self) -> dict:
        return asdict(self)


def pin_frame(frame: int) -> None:
    """Pose animated assets at one frame: it is the frame measured and the frame rendered."""
    scene = bpy.context.scene
    scene.frame_start = frame
    scene.frame_end = frame
    scene.frame_set(frame)


def _roots(objects) -> list:
    roots, seen = [], set()
    for obj in objects:
        while obj.parent is not None:
            obj = obj.parent
        if obj.as_pointer() not in seen:
            seen.add(obj.as_pointer())
            roots.append(obj)
    return roots


def _in_hierarchy(obj, root_ptrs: set[int]) -> bool:
    while obj is not None:
        if obj.as_pointer() in root_ptrs:
            return True
        obj = obj.parent
    return False


def world_points(roots) -> np.ndarray:
    """World-space vertices of everything rendered under the roots, as evaluated now.

    Walks the depsgraph's instances, so modifiers, armature poses, curves, text and instanced
    collections count exactly as they render.
    """
    root_ptrs = {r.as_pointer() for r in roots}
    depsgraph = bpy.context.evaluated_depsgraph_get()
    local_cache: dict[int, np.ndarray] = {}
    chunks = []
    for inst in depsgraph.object_instances:
        ob = inst.object
        if ob.type not in GEOMETRY_TYPES:
            continue
        owner = inst.parent.original if inst.is_instance and inst.parent else ob.original
        if owner.hide_render or not _in_hierarchy(owner, root_ptrs):
            continue
        key = ob.original.as_pointer() if not inst.is_instance else hash((ob.original.as_pointer(), "inst"))
        pts = local_cache.get(key)
        if pts is None:
            mesh = ob.to_mesh()
            n = len(mesh.vertices) if mesh is not None else 0
            pts = np.empty(n * 3, dtype=np.float32)
            if n:
                mesh.vertices.foreach_get("co", pts)
            ob.to_mesh_clear()
            pts = pts.reshape(-1, 3).astype(np.float64)
            local_cache[key] = pts
        if len(pts):
            mw = np.array(inst.matrix_world, dtype=np.float64)
            chunks.append(pts @ mw[:3, :3].T + mw[:3, 3])
    if not chunks:
        return np.zeros((0, 3))
    return np.concatenate(chunks)


def normalize_objects(objects, mode: str = "unit_box", frame: int = 0) -> Normalization:
    """Centre the objects' bounding box and scale it per `mode` (unit_box, unit_sphere or none)."""
    if mode not in ("unit_box", "unit_sphere", "none"):
        raise ValueError(f"normalize.mode: {mode!r} is not allowed")
    pin_frame(frame)
    tops = _roots(objects)
    # Normalising twice (the GUI allows it) reuses the holder, reset to identity first.
    holder = next((r for r in tops if r.get(ROOT_NAME)), None)
    if holder is not None:
        holder.matrix_world = Matrix.Identity(4)
        bpy.context.view_layer.update()
    roots = [r for r in tops if not r.get(ROOT_NAME)]
    pts = world_points(tops)
    if len(pts) == 0:
        raise AssetError("no vertices to normalise (the asset has no visible geometry)")
    if not np.isfinite(pts).all():
        raise AssetError("the asset has non-finite vertex coordinates (NaN or inf)")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = (lo + hi) / 2.0
    if mode == "none":
        scale, center = 1.0, np.zeros(3)
    elif mode == "unit_box":
        extent = float((hi - lo).max())
        if extent <= 1e-12:
            raise AssetError("the asset has zero size (all vertices at one point)")
        scale = 1.0 / extent
    else:
        reach = float(np.linalg.norm(pts - center, axis=1).max())
        if reach <= 1e-12:
            raise AssetError("the asset has zero size (all vertices at one point)")
        scale = 1.0 / reach
    offset = -scale * center

    # Parent the roots to an identity empty (world matrices unchanged), then scale the empty.
    if holder is None:
        holder = bpy.data.objects.new(ROOT_NAME, None)
        holder[ROOT_NAME] = True
        bpy.context.scene.collection.objects.link(holder)
    for root in roots:
        world = root.matrix_world.copy()
        root.parent = holder
        root.matrix_parent_inverse = Matrix.Identity(4)
        root.matrix_world = world
    holder.scale = (scale, scale, scale)
    holder.location = tuple(offset)
    bpy.context.view_layer.update()

    # Measure again: what is recorded is what will render.
    after = world_points([holder])
    return Normalization(
        scale=float(scale),
        offset=[float(v) + 0.0 for v in offset],  # + 0.0 turns -0.0 into 0.0 in the JSON
        radius=float(np.linalg.norm(after, axis=1).max()),
        mode=mode,
        frame=int(frame),
        bbox_min=[float(v) for v in after.min(axis=0)],
        bbox_max=[float(v) for v in after.max(axis=0)],
    )
