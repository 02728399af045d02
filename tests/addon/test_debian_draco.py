"""Debian's Blender 3.4 has no Draco decoder: its glTF importer loads libextern_draco.so, which
Debian's build leaves out and no Debian package provides (libdraco7 lacks the C API it calls).
Importing a Draco-compressed asset (Box.glb) is one line in the panel, with no traceback and
nothing half-imported; a plain one (Duck.glb) still imports. The legacy zip is installed with
Blender's own operator, on Debian's Python packages only (nothing lent from the venv)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .test_gui import legacy_zip

pytestmark = pytest.mark.slow

IMPORT = """
import sys, bpy
try:
    import numpy  # noqa: F401  (Debian's python3-numpy: the add-on needs it)
except ImportError:
    print("RESULT no numpy")
    raise SystemExit
bpy.ops.preferences.addon_install(filepath=sys.argv[-2], overwrite=True)
import addon_utils
addon_utils.enable("mvcap_studio", default_set=True)
bpy.data.batch_remove(list(bpy.data.objects) + list(bpy.data.meshes))
def data():
    return sorted(f"{kind}:{block.name}" for kind in ("objects", "meshes", "materials", "images", "collections")
                  for block in getattr(bpy.data, kind))
before = data()
try:
    print("RESULT", bpy.ops.mvcap.import_asset(filepath=sys.argv[-1]), repr(bpy.context.scene.mvcap.asset_uid))
except RuntimeError as exc:
    print("RESULT", str(exc).strip(), "|", sorted(set(data()) - set(before)), len(bpy.context.scene.objects), "|",
          repr(bpy.context.scene.mvcap.asset_path))
"""


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory):
    if shutil.which("blender") is None:
        pytest.skip("blender not installed (make sysdeps)")
    return legacy_zip(tmp_path_factory.mktemp("dist"))


def _import_in_debian_blender(tmp_path, zip_path, asset) -> tuple[str, str]:
    """The RESULT line of importing `asset` with the panel's operator, and Blender's whole output."""
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(tmp_path / "config"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python-expr", IMPORT, "--", str(zip_path),
                           str(asset)], env=env, capture_output=True, text=True, timeout=180)
    output = proc.stdout + proc.stderr
    result = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT")), None)
    assert result is not None, output[-3000:]
    if result == "RESULT no numpy":
        pytest.skip("Debian's Blender lacks python3-numpy (make sysdeps)")
    return result, output


def test_a_draco_asset_is_one_line_and_leaves_nothing(glb_dir, tmp_path, zip_path):
    result, output = _import_in_debian_blender(tmp_path, zip_path, glb_dir / "Box.glb")
    if result == "RESULT {'FINISHED'} 'Box'":
        pytest.skip("this Blender decodes Draco: nothing to refuse")
    assert result == ("RESULT Error: cannot import: Box.glb: this Blender build cannot decode Draco-compressed "
                      "glTF; open it with a Blender from blender.org (its glTF importer has the decoder) or "
                      "re-export it without Draco compression | [] 0 | ''"), output[-3000:]
    assert "Traceback" not in output and "extern_draco" not in output  # the importer never ran
    # a plain asset still imports (Debian's numpy makes the importer retry: see importers.py)
    assert _import_in_debian_blender(tmp_path, zip_path, glb_dir / "Duck.glb")[0] == "RESULT {'FINISHED'} 'Duck'"
