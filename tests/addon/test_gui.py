"""A real GUI: Debian's Blender 3.4.1 under Xvfb installs the legacy add-on, shows the MVCap tab
with the Duck and its rig, and takes a screenshot (docs/addon-panel.png is one of these)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("gui_driver.py")

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _numpy_dirs(dest: Path) -> str:
    """Debian's blender does not depend on python3-numpy; lend it this interpreter's (same 3.11 ABI)."""
    import numpy

    site = Path(numpy.__file__).resolve().parent.parent
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (dest / name).symlink_to(site / name)
    return str(dest)


def test_sidebar_tab_is_drawn_in_real_blender(glb_dir, tmp_path):
    for tool in ("blender", "xvfb-run"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (bash scripts/install_system_deps.sh)")
    scripts = tmp_path / "scripts"
    (scripts / "addons").mkdir(parents=True)
    (scripts / "addons" / "mvcap_studio").symlink_to(REPO / "blender_addon")  # the legacy add-on
    pylib = tmp_path / "pylib"
    pylib.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(scripts), BLENDER_USER_CONFIG=str(tmp_path / "config"),
               MVCAP_GUI_OUT=str(out), MVCAP_GUI_ASSET=str(glb_dir / "Duck.glb"),
               MVCAP_GUI_PYPATH=_numpy_dirs(pylib))
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "blender", "--factory-startup",
           "--enable-event-simulate", "--python", str(DRIVER)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    report_path = out / "report.json"
    assert report_path.exists(), f"blender exited {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    report = json.loads(report_path.read_text())
    assert report["errors"] == [], report.get("traceback", report["errors"])
    assert report["enabled"]
    assert report["rig_objects"] == 24 + 2  # markers, camera, orbit

    drawn = report["drawn"]
    for name in ("MVCAP_PT_main", "MVCAP_PT_cameras", "MVCAP_PT_lighting", "MVCAP_PT_background", "MVCAP_PT_render"):
        assert drawn.get(name), f"{name} was not drawn: {drawn}"
    assert "MVCAP_PT_cameras_advanced" not in drawn  # folded by default: header only

    from PIL import Image

    shot = Image.open(report["screenshot"]).convert("RGB")
    assert shot.size == tuple(report["window"])
    x, y, w, h = report["sidebar"]
    sidebar = shot.crop((x, shot.height - (y + h), x + w, shot.height - y))
    # The lighting and background colour swatches are white; nothing in Blender's dark theme
    # sidebar is, so white pixels there mean the panel's fields were drawn into the window.
    import numpy as np

    white = int(np.all(np.asarray(sidebar) == 255, axis=-1).sum())
    assert white > 1000, f"only {white} white pixels in the sidebar"
    shutil.copy(report["screenshot"], Path(os.environ.get("MVCAP_GUI_KEEP", tmp_path)) / "addon-panel.png")
