"""The static gallery: contact sheets per object, captions, filters; and a look in headless Chromium."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from farm.dataset.cli import dataset as dataset_cli
from farm.dataset.gallery import contact_sheet, write_gallery

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000"]


def test_contact_sheet_grid(tmp_path):
    paths = []
    for i in range(6):
        im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        im.paste((40 * i, 100, 200, 255), (16, 16, 48, 48))
        paths.append(tmp_path / f"{i:03d}.png")
        im.save(paths[-1])
    sheet = contact_sheet(paths, thumb=100, gap=2)
    assert sheet.size == (4 * 100 + 5 * 2, 2 * 100 + 3 * 2)  # 6 views: 4 columns, 2 rows
    px = np.asarray(sheet)
    assert tuple(px[2 + 50, 2 + 50]) == (0, 100, 200)  # view 0's square, centred in its tile
    assert tuple(px[2 + 90, 2 + 90]) == (236, 238, 242)  # transparent -> light grey


@pytest.mark.slow
def test_gallery_page(built_copy):
    result = CliRunner().invoke(dataset_cli, ["gallery", str(built_copy)])
    assert result.exit_code == 0, result.output
    page = (built_copy / "gallery" / "index.html").read_text()
    sheets = sorted((built_copy / "gallery" / "sheets").iterdir())
    assert len(sheets) == 11  # one per done object
    assert page.count('<article class="obj') == 13
    assert page.count('data-status="failed"') == 2 and "not a GLB file, it is an HTML page" in page
    assert 'value="remote control"' in page and "forced</span>" in page
    with Image.open(built_copy / "gallery" / "sheets" / "10.jpg") as sheet:  # a 30-frame MVImgNet sequence
        assert sheet.size == (6 * 128 + 7 * 2, 5 * 128 + 6 * 2)
    assert not list(built_copy.glob("gallery/**/.*"))  # no temporary files


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        pytest.skip("chromium is not installed (scripts/install_system_deps.sh installs Debian's chromium)")
    return exe


def _run_chromium(exe: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.browser
@pytest.mark.slow
def test_gallery_in_headless_chromium(built_copy, tmp_path):
    exe = _chromium()
    index = write_gallery(built_copy)
    url = index.resolve().as_uri()

    dom = _run_chromium(exe, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert loaded, "the page's load handler did not run"
    assert loaded.group(1) == loaded.group(2) == "11", "some contact sheets did not load"
    assert "broken" not in re.findall(r'<img[^>]*class="([^"]*)"', dom.stdout)

    # the inline filter, driven from the URL
    dom = _run_chromium(exe, tmp_path, "--dump-dom", url + "#status=failed")
    shown = re.findall(r'<article class="obj (\w+)(?: hidden)?"', dom.stdout)
    visible = [s for s in re.findall(r'<article class="obj ([\w ]+)"', dom.stdout) if "hidden" not in s]
    assert len(shown) == 13 and visible == ["failed", "failed"]
    assert "2 of 13 shown" in dom.stdout

    shot = tmp_path / "gallery.png"
    done = _run_chromium(exe, tmp_path, f"--screenshot={shot}", "--window-size=1280,900", url)
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    assert px.shape[:2] == (900, 1280)
    # the dark header, the light page and rendered contact sheets are all there
    assert (px[10:40].mean(axis=(0, 1)) < 80).all()
    assert len(np.unique(px[100:].reshape(-1, 3) // 16, axis=0)) > 50
    if os.environ.get("MVCAP_UPDATE_DOCS"):  # docs/gallery.png: wide enough for all three sources
        wide = tmp_path / "wide.png"
        _run_chromium(exe, tmp_path, f"--screenshot={wide}", "--window-size=1600,1400", url)
        with Image.open(wide) as im:  # 256 colours: a third of the size, no visible change
            im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                REPO / "docs" / "gallery.png", optimize=True)
