"""Shared fixtures: where the real test assets live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MVCAP_SHARED", REPO.parent / "shared"))
GLB_DIR = SHARED / "assets" / "glb"
BROKEN_DIR = SHARED / "assets" / "broken"


@pytest.fixture(scope="session")
def glb_dir() -> Path:
    if not GLB_DIR.is_dir():
        pytest.skip(f"test assets not found at {GLB_DIR} (set MVCAP_SHARED)")
    return GLB_DIR


@pytest.fixture(scope="session")
def broken_dir() -> Path:
    if not BROKEN_DIR.is_dir():
        pytest.skip(f"broken test assets not found at {BROKEN_DIR} (set MVCAP_SHARED)")
    return BROKEN_DIR
