"""A real GUI, as an artist has it: Debian's Blender 3.4.1 under Xvfb with Debian's python3-numpy,
python3-zmq and python3-pil (installed as the README says, nothing lent from the venv, nothing
patched), the legacy zip installed by Blender's own install operator, then every step of the
panel clicked, dragged, typed or keyed by gui_driver.py (window events through Blender's own UI
handlers, gui_input.py), up to a submit to a real broker and worker. Screenshots of every step
are kept (MVCAP_GUI_KEEP=DIR keeps them there; docs/ holds the ones the README shows)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO

DRIVER = Path(__file__).with_name("gui_driver.py")
DEBIAN_PACKAGES = ("python3-numpy", "python3-zmq", "python3-pil")  # README: Blender add-on
PYRAMID_OBJ = """v 0 0 1\nv -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0
f 1 2 3\nf 1 3 4\nf 1 4 5\nf 1 5 2\nf 2 5 4 3
"""

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def blender_python_lacks(*modules: str) -> list[str]:
    code = f"import importlib.util as u; print([m for m in {list(modules)!r} if u.find_spec(m) is None])"
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python-expr", code],
                          capture_output=True, text=True, timeout=120)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("["))
    return json.loads(line.replace("'", '"'))


@pytest.fixture(scope="module")
def debian_blender():
    """Debian's blender with the Python packages the README tells the artist to install."""
    for tool in ("blender", "xvfb-run"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (make sysdeps)")
    if blender_python_lacks("numpy", "zmq", "PIL"):
        if os.geteuid() != 0:
            pytest.skip(f"Blender's Python lacks packages and this is not root: apt install {' '.join(DEBIAN_PACKAGES)}")
        proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES],
                              capture_output=True, text=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert blender_python_lacks("numpy", "zmq", "PIL") == []


def legacy_zip(dest: Path) -> Path:
    """The README's build command, run by the system Python when there is one."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    proc = subprocess.run([python, str(REPO / "scripts" / "build_extension.py"), "--only", "legacy", "-o", str(dest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def run_gui(tmp_path, env_extra: dict) -> dict:
    out = tmp_path / "gui"
    out.mkdir()
    config = tmp_path / "config"
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(config),
               MVCAP_GUI_OUT=str(out), **{"MVCAP_GUI_" + k: str(v) for k, v in env_extra.items()})
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "blender", "--factory-startup",
           "--enable-event-simulate", "--python", str(DRIVER)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    (tmp_path / "blender.log").write_text(proc.stdout + proc.stderr)
    report_path = out / "report.json"
    assert report_path.exists(), f"blender exited {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    report = json.loads(report_path.read_text())
    keep = os.environ.get("MVCAP_GUI_KEEP")
    if keep:
        for shot in report["shots"]:
            shutil.copy(shot, Path(keep) / Path(shot).name)
    return report


def test_artist_session_in_debian_blender(debian_blender, local_farm, glb_dir, tmp_path):
    (tmp_path / "pyramid.obj").write_text(PYRAMID_OBJ)
    report = run_gui(tmp_path, {"ZIP": legacy_zip(tmp_path / "dist"), "GLB": glb_dir / "Duck.glb",
                                "OBJ": tmp_path / "pyramid.obj", "FARM": local_farm, "FARM_OUT": tmp_path / "farm_out",
                                "VIEWS_OUT": tmp_path / "views"})
    assert report["errors"] == [], report.get("traceback", report["errors"])
    assert report["enabled"] and report["addon_file"].startswith(str(tmp_path / "scripts" / "addons" / "mvcap_studio"))
    clicked = [name for name, _ in report["steps"]]
    assert clicked == ["mvcap.build_rig", "mvcap.import_asset", "mvcap.import_asset", "mvcap.normalize",
                       "mvcap.build_rig", "mvcap.look_through", "mvcap.render_view", "mvcap.render_all",
                       "mvcap.render_all", "mvcap.render_all", "mvcap.export_spec", "mvcap.submit", "mvcap.clear_rig"]
    assert report["clicks"] == len(clicked) + 3  # and Render All's cancel button, the Presets menu twice
    name, views, pattern, preset_views, preset_pattern = report["zero123"]
    assert (name, views, pattern) == ("zero123", preset_views, preset_pattern) and "preset zero123" in report["zero123_said"]
    assert report["mvcap_preset"] == "mvcap"
    assert (report["views_typed_0"], report["views_typed_12"]) == (1, 12)  # the field's minimum holds
    assert_scene_steps(report)
    assert_render_steps(report, tmp_path)
    assert_farm_steps(report, tmp_path)
    assert len(report["shots"]) >= 8


def said(report, button):
    return " | ".join(line for name, lines in report["steps"] if name == button for line in lines)


def assert_scene_steps(report):
    """What the clicks, Ctrl+Z / Ctrl+Shift+Z, the slider drag and the typed views did to the scene."""
    assert "no asset: import one first" in " ".join(report["no_asset_said"]) and report["no_asset_rig"]
    assert report["obj_objects"] == ["pyramid"]
    assert report["obj_undone"] == [[], ""] and report["obj_redone"] == [["pyramid"], "pyramid"]
    assert len(report["glb_meshes"]) == 1  # one Duck: the np.bool retry left nothing of its first try
    assert "normalised: scale" in " ".join(report["normalize_said"])
    assert report["normalized"] == [True, True] and report["normalize_redone"] == [True, True]
    assert report["normalize_undone"] == [False, False]
    assert report["truncated"] == [], (report["label_room"], report["label_widths"])
    before, after = report["before_rig"], report["after_rig"]
    assert (before["rig"], before["camera"], before["size"]) == (False, "Camera", [1920, 1080])
    assert (after["rig"], after["camera"], after["size"]) == (True, "MVCap Camera", [128, 128])  # the spec's frame
    assert report["rig_undone"] == before and report["rig_redone"] == after
    assert report["rig_objects"] == 12 + 2 + report["rig_lights"] and report["rig_lights"] >= 1
    assert 0 < report["dragged_to"] < 12  # the drag moved the slider
    assert sorted(map(int, report["cameras"])) == sorted({report["dragged_to"], 0, 3, 5, 11})
    assert report["view_99"] == "View 99 does not exist: this spec has 12 views (0-11)"
    assert "bpy.ops.mvcap.look_through" in said(report, "mvcap.look_through") and report["look_through"] == "CAMERA"
    after_clear = report["after_clear"]
    assert (after_clear["rig"], after_clear["camera"], after_clear["size"]) == (False, "Camera", [1920, 1080])


def assert_render_steps(report, tmp_path):
    assert "rendered view 5 (128x128)" in said(report, "mvcap.render_view")
    assert "offers no denoiser" in said(report, "mvcap.render_view")  # 3.4's Cycles: a warning, not a failure
    assert report["engine_kept"] and report["scenes_after_render"] == ["Scene"]
    done, total, cancel_said = report["render_all_cancel"]
    assert done < total == 12 and f"Render All Views cancelled after {done} of 12 views" in cancel_said
    assert report["contact_sheet"]
    done, total, esc_said = report["render_all_esc"]
    assert done < total == 12 and f"Render All Views cancelled after {done} of 12 views" in esc_said
    assert len({done for _, done in report["render_all_progress"]}) > 2, report["render_all_progress"]
    assert "rendered 12 views" in " ".join(report["render_all_said"])
    # The GUI camera of view k is view k of the farm's own code (render_asset in a background Blender)
    frames = json.loads((tmp_path / "views" / "Duck" / "transforms.json").read_text())["frames"]
    for k, matrix in report["cameras"].items():
        np.testing.assert_allclose(np.array(matrix), np.array(frames[int(k)]["transform_matrix"]), atol=1e-4)


def assert_farm_steps(report, tmp_path):
    exported = json.loads((tmp_path / "gui" / "spec.json").read_text())
    assert exported["camera"]["num_views"] == 12 and exported["render"]["resolution_x"] == 128
    assert "submitted job" in said(report, "mvcap.submit")
    state, views_done, views_total, progress, message = report["farm_final"]
    assert (state, views_done, views_total, progress) == ("done", 12, 12, 100.0), message
    shown = {views for state, views, _, _ in report["farm_progress"] if state == "running"}
    assert len(shown) > 3, report["farm_progress"]  # the panel followed the job view by view
    assert len(list((tmp_path / "farm_out" / "views" / "Duck").glob("*.png"))) == 12


WITHOUT_NUMPY = """
import sys, bpy
sys.modules["numpy"] = None  # this Blender's Python has no numpy (an import of it fails)
bpy.ops.preferences.addon_install(filepath=sys.argv[-1], overwrite=True)
errors = []
import addon_utils
addon_utils.enable("mvcap_studio", default_set=True, handle_error=lambda exc: errors.append(repr(exc)))
print("RESULT", errors, hasattr(bpy.types, "MVCAP_PT_needs_numpy"), hasattr(bpy.types, "MVCAP_PT_main"))
"""


def test_without_numpy_the_addon_says_what_to_install(tmp_path):
    """Enabling on a Blender whose Python lacks numpy: no traceback, one message naming the package."""
    if shutil.which("blender") is None:
        pytest.skip("blender not installed (make sysdeps)")
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(tmp_path / "config"))
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python-expr", WITHOUT_NUMPY, "--",
                           str(legacy_zip(tmp_path / "dist"))], env=env, capture_output=True, text=True, timeout=120)
    result = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT [] True False", proc.stdout[-2000:]
    assert ("MVCap Studio: this Blender's Python has no numpy; install python3-numpy "
            "(sudo apt install python3-numpy) and restart Blender") in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
