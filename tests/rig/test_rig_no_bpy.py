"""rig/ is pure Python and numpy: importing it must never load bpy."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RIG_DIR = Path(__file__).resolve().parents[2] / "blender_addon" / "rig"
RIG_MODULES = sorted(path.stem for path in RIG_DIR.glob("*.py") if path.stem != "__init__")


def test_rig_modules_are_the_documented_ones():
    assert {"spec", "seeding", "fileio", "patterns", "cameras", "lighting", "transforms", "presets"} <= set(RIG_MODULES)


def test_importing_every_rig_module_does_not_load_bpy():
    # A fresh interpreter: this test session may have loaded bpy for other tests.
    imports = "; ".join(f"import blender_addon.rig.{name}" for name in RIG_MODULES)
    code = f"import sys; {imports}; print('bpy' in sys.modules, 'mathutils' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=RIG_DIR.parents[1], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
