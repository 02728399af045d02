"""blender_addon.scene inside a real, older Blender (Debian's `blender` 3.4), with its own operators.

Skipped where no `blender` executable is installed. Debian's package ships no numpy, so the
test lends it this interpreter's numpy and Pillow (same Python 3.11 ABI) on PYTHONPATH.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("blender_compat_script.py")


def _lend_packages(target: Path) -> Path:
    import numpy
    import PIL

    target.mkdir()
    for module in (numpy, PIL):
        pkg = Path(module.__file__).parent
        (target / pkg.name).symlink_to(pkg)
        libs = pkg.parent / f"{pkg.name.lower()}.libs"
        for candidate in (libs, pkg.parent / f"{module.__name__.lower()}.libs", pkg.parent / "pillow.libs"):
            if candidate.is_dir() and not (target / candidate.name).exists():
                (target / candidate.name).symlink_to(candidate)
    return target


def run_installed_blender(script: Path, tmp_path: Path, tag: str) -> dict:
    """Run `script` in Debian's Blender (farm-side code, with the venv's numpy lent) and return the
    JSON report it printed on its last `<tag> ` line."""
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("no `blender` executable (Debian's blender 3.4 is installed by scripts/install_system_deps.sh)")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("lending numpy needs the same Python minor version as Blender's (3.11)")
    lent = _lend_packages(tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(lent), str(REPO)]))
    proc = subprocess.run(
        [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(script), "--",
         str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"{tag} ")]
    assert lines, f"blender printed no report (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(lines[-1][len(tag) + 1:])


@pytest.mark.slow
def test_scene_on_installed_blender(tmp_path):
    report = run_installed_blender(SCRIPT, tmp_path, "COMPAT")
    assert report["errors"] == [], report["errors"]
    version = tuple(report["version"])
    assert report["eevee_engine"] == ("BLENDER_EEVEE_NEXT" if (4, 2) <= version[:2] < (5, 0) else "BLENDER_EEVEE")
    for ext, info in report["formats"].items():
        assert "error" not in info, f"{ext} on Blender {version}: {info['error']}"
        assert info["largest_side"] == pytest.approx(1.0, abs=1e-4), ext
        assert max(abs(c) for c in info["centre"]) < 1e-4, ext
    render = report["render"]
    assert render["written"] == ["000.png", "001.png", "002.png", "transforms.json"]
    assert all(q["issues"] == [] for q in render["quality"]), render["quality"]
    # poses and intrinsics on that version: the silhouette is the projected normalised box
    from blender_addon.rig import cameras
    from blender_addon.rig.transforms import read_transforms
    from tests.scene.test_scene import alpha_of, convex_hull, frame_K, iou, polygon_mask

    folder = Path(render["dir"])
    data = read_transforms(folder / "transforms.json")
    lo, hi = np.array(data["normalization"]["bbox_min"]), np.array(data["normalization"]["bbox_max"])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    for frame in data["frames"]:
        pixels = cameras.project_points(corners, np.array(frame["transform_matrix"]), frame_K(data))
        predicted = polygon_mask(convex_hull(pixels), data["w"], data["h"])
        score = iou(alpha_of(folder / frame["file_path"]) >= 128, predicted)
        assert score > 0.9, f"Blender {version} {frame['file_path']}: IoU {score:.3f}"
    passes = Path(report["passes_dir"])
    assert sorted(p.name for p in passes.iterdir()) == [
        "000.png", "000_albedo.png", "000_depth.exr", "000_mask.png", "000_normal.exr", "transforms.json"]
    from PIL import Image

    from blender_addon.rig.pass_files import read_depth

    mask = np.asarray(Image.open(passes / "000_mask.png")) > 127
    depth = read_depth(passes / "000_depth.exr")
    half_diagonal = 3**0.5 / 2  # the camera is 2.0 from the centre of the unit box
    assert mask.sum() > 100 and np.all(np.abs(depth[mask] - 2.0) < half_diagonal)
