"""Run inside a real Blender (e.g. Debian's 3.4): `blender -b --factory-startup --python THIS -- OUT_DIR`.

Exercises blender_addon.scene with that version's own operators: it exports a box with the
version's exporters, imports every format back, normalises, and renders. It prints one line,
`COMPAT {json}`, that tests/scene/test_blender_compat.py checks.
"""
import json
import sys
import traceback
from pathlib import Path

import bpy

out = Path(sys.argv[sys.argv.index("--") + 1])
out.mkdir(parents=True, exist_ok=True)
report = {"version": list(bpy.app.version), "formats": {}, "errors": []}


def op_exists(idname):
    module, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, module), name).get_rna_type()
        return True
    except (KeyError, AttributeError):
        return False


def first_op(*idnames):
    for idname in idnames:
        if op_exists(idname):
            module, name = idname.split(".")
            return getattr(getattr(bpy.ops, module), name)
    raise RuntimeError(f"none of {idnames} exists")


try:
    from blender_addon.rig.spec import spec_from_dict
    from blender_addon.scene import build
    from blender_addon.scene.importers import import_asset
    from blender_addon.scene.normalize import normalize_objects
    from blender_addon.scene.render import render_asset

    report["eevee_engine"] = build.eevee_engine_name()
    build.reset_scene()
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(3.0, 4.0, 5.0))
    cube = bpy.context.active_object
    cube.scale = (2.0, 1.0, 0.5)
    bpy.context.view_layer.update()
    paths = {ext: out / f"box.{ext}" for ext in ("obj", "ply", "stl", "fbx", "blend")}
    first_op("wm.obj_export", "export_scene.obj")(filepath=str(paths["obj"]))
    first_op("wm.ply_export", "export_mesh.ply")(filepath=str(paths["ply"]))
    first_op("wm.stl_export", "export_mesh.stl")(filepath=str(paths["stl"]))
    first_op("export_scene.fbx")(filepath=str(paths["fbx"]))
    bpy.data.libraries.write(str(paths["blend"]), {cube})

    for ext, path in paths.items():
        try:
            build.reset_scene()
            objects = import_asset(path)
            norm = normalize_objects(objects, "unit_box", 0)
            lo, hi = norm.bbox_min, norm.bbox_max
            report["formats"][ext] = {"largest_side": max(h - l for l, h in zip(lo, hi)),
                                      "centre": [(l + h) / 2 for l, h in zip(lo, hi)]}
        except Exception as exc:  # noqa: BLE001 - every format is reported, not just the first failure
            report["formats"][ext] = {"error": f"{type(exc).__name__}: {exc}"}

    spec = spec_from_dict({"camera": {"pattern": "explicit", "explicit": [[30, 20, 2.0], [200, 50, 2.0], [300, -40, 2.0]],
                                      "roll_deg": 40.0},
                           "render": {"resolution_x": 80, "resolution_y": 64, "samples": 2}})
    result = render_asset(paths["obj"], spec, out / "render_obj", uid="box")
    report["render"] = result.to_dict()
    report["render"]["written"] = sorted(p.name for p in (out / "render_obj").iterdir())
    report["render"]["dir"] = str(out / "render_obj")
    # depth, normal, albedo and mask passes through that version's multilayer EXR (scene/passes.py)
    passes = spec_from_dict({"camera": {"pattern": "explicit", "explicit": [[30, 20, 2.0]]},
                             "render": {"resolution_x": 48, "resolution_y": 48, "samples": 2,
                                        "outputs": ["rgba", "depth", "normal", "albedo", "mask"]}})
    render_asset(paths["obj"], passes, out / "render_passes", uid="box")
    report["passes_dir"] = str(out / "render_passes")
except Exception as exc:  # noqa: BLE001
    report["errors"].append("".join(traceback.format_exception(exc)))

print("COMPAT " + json.dumps(report))
sys.stdout.flush()
