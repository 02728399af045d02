"""Run inside a real Blender: `blender -b --factory-startup --python THIS -- OUT_DIR`.

Renders one view of a cube with denoising (OIDN), the light tree and AgX asked for, and prints
`FIELDS {json}` for tests/scene/test_render_fields.py: the result, the denoisers Cycles offers
and whether denoising ended up on.
"""
import json
import sys
import traceback
from pathlib import Path

import bpy

out = Path(sys.argv[sys.argv.index("--") + 1])
report = {"version": list(bpy.app.version)}
try:
    from blender_addon.rig.spec import spec_from_dict
    from blender_addon.scene import build, render_settings
    from blender_addon.scene.render import render_asset

    build.reset_scene()
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    asset = out.parent / "cube.blend"
    bpy.data.libraries.write(str(asset), {bpy.context.active_object})
    spec = spec_from_dict({
        "camera": {"pattern": "explicit", "explicit": [[30.0, 30.0, 2.5]]},
        "render": {"resolution_x": 32, "resolution_y": 32, "samples": 2, "denoise": True,
                   "light_tree": True, "view_transform": "AgX"},
    })
    report["result"] = render_asset(asset, spec, out, "cube").to_dict()
    report["denoisers"] = list(render_settings.enum_choices(bpy.context.scene.cycles, "denoiser"))
    report["use_denoising"] = bpy.context.scene.cycles.use_denoising
except Exception:
    report["error"] = traceback.format_exc()
print("FIELDS " + json.dumps(report))
