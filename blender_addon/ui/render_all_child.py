"""The background process of Render All Views (see render_all.py): renders every view of one asset
with scene.render.render_asset, the farm worker's code, then a contact sheet of the views.

    blender -b --factory-startup --python render_all_child.py -- JOB.json
    python render_all_child.py JOB.json              (bpy installed as a Python module)

JOB.json: {"addon_dir", "sys_path", "asset", "uid", "spec", "staging", "out_dir", "sheet"}. The
views are rendered into `staging` (a hidden folder of ours beside out_dir) and moved into out_dir
only when all are done: a cancelled or failed re-render leaves the previous set in out_dir as it
was. Prints one line per finished view, "MVCAP PROGRESS
<done> <total>", then "MVCAP DONE <result json>", or "MVCAP ERROR <one line>" and exit status 1.
"""
import importlib.util
import json
import math
import os
import sys

PACKAGE = "mvcap_render_all"  # the add-on imported under this name, whatever it is installed as


def _say(*words):
    print("MVCAP", *words, flush=True)


def _import_addon(addon_dir):
    init = os.path.join(addon_dir, "__init__.py")
    spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[addon_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)


def contact_sheet(out_dir, files, target, tile=256, gap=4):
    """The views in a grid on a dark grey ground (transparent pixels show it), written atomically."""
    from PIL import Image

    views = []
    for name in files:
        with Image.open(os.path.join(out_dir, name)) as img:
            views.append(img.convert("RGBA"))
    tile = min(tile, max(max(v.size) for v in views)) if views else tile  # small renders stay 1:1
    cols = max(1, math.ceil(math.sqrt(len(views))))
    rows = max(1, math.ceil(len(views) / cols))
    sheet = Image.new("RGBA", (cols * (tile + gap) + gap, rows * (tile + gap) + gap), (48, 48, 48, 255))
    for i, view in enumerate(views):
        view.thumbnail((tile, tile))
        x = gap + (i % cols) * (tile + gap) + (tile - view.width) // 2
        y = gap + (i // cols) * (tile + gap) + (tile - view.height) // 2
        sheet.alpha_composite(view, (x, y))
    part = target + ".part"
    sheet.save(part, "PNG")
    os.replace(part, target)


def install(staging, out_dir):
    """Move the finished set from staging into out_dir, transforms.json last: it marks the set
    complete. The emptied staging folder goes."""
    os.makedirs(out_dir, exist_ok=True)
    names = sorted(name for name in os.listdir(staging) if name != "transforms.json")
    for name in [*names, "transforms.json"]:
        os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    os.rmdir(staging)


def main(job_path):
    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    sys.path += [p for p in job["sys_path"] if p not in sys.path]  # the GUI's packages (an extension's Pillow)
    _import_addon(job["addon_dir"])
    from mvcap_render_all.rig.errors import one_line
    from mvcap_render_all.rig.spec import spec_from_dict
    from mvcap_render_all.scene.render import render_asset

    try:
        result = render_asset(job["asset"], spec_from_dict(job["spec"]), job["staging"], job["uid"],
                              progress=lambda done, total: _say("PROGRESS", done, total))
        contact_sheet(job["staging"], result.files, job["sheet"])
        install(job["staging"], job["out_dir"])
    except Exception as exc:
        _say("ERROR", one_line(exc))
        return 1
    _say("DONE", json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    sys.exit(main(args[0]))
