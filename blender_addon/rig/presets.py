"""Named specs shipped with the add-on: rig/presets/<name>.json, each saying what it reproduces."""
from __future__ import annotations

from pathlib import Path

from .spec import SpecError, ViewSpec, load_spec

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> ViewSpec:
    """The preset's spec. An unknown name raises SpecError listing the known ones."""
    names = preset_names()
    # checked against the listing, so a name can never reach outside the folder
    if name not in names:
        raise SpecError(f"preset: {name!r} is unknown; allowed: {', '.join(names)}")
    return load_spec(PRESET_DIR / f"{name}.json")
