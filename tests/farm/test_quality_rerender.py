"""`--quality fail` refuses a flagged render before anything is installed: real `farm render`
processes, real bpy renders (32 px, 1 sample, 2 views). Box.glb seen from distance 4 is not
flagged; from the mvcap preset's distance 1.5 it touches the border in every view (clipped).
A refused set goes to OUT/.farm/refused/<attempt_id>/ (named in the reason), never into the
object's folder: a rerender's previous set stays byte for byte."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from farm.broker.streamed import StreamedFiles, incoming_dir
from .conftest import REPO, farm

pytestmark = pytest.mark.slow

TINY = ["--views", "2", "--resolution", "32", "--samples", "1", "--no-progress"]
REASON = "quality: clipped in 2 of 2 view(s) (--quality fail); its files are in "


@pytest.fixture
def assets(tmp_path) -> Path:
    folder = tmp_path / "assets"
    folder.mkdir()
    shutil.copyfile(REPO / "examples" / "assets" / "Box.glb", folder / "Box.glb")
    return folder


@pytest.fixture
def far_spec(tmp_path) -> Path:
    """The mvcap preset with the camera far enough that the box is whole in every view."""
    spec = json.loads((REPO / "blender_addon" / "rig" / "presets" / "mvcap.json").read_text())
    spec["camera"]["distance"] = 4.0
    path = tmp_path / "far.json"
    path.write_text(json.dumps(spec))
    return path


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def the_object(out: Path) -> dict:
    [obj] = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    return obj


def refused_folder(out: Path, error: str) -> Path:
    """The folder the failure reason names, checked to be OUT/.farm/refused/<attempt_id>."""
    assert error.startswith(REASON), error
    folder = Path(error[len(REASON):])
    assert folder.parent == (out / ".farm" / "refused").resolve() and re.fullmatch(r"\d+", folder.name), error
    return folder


def test_a_refused_rerender_keeps_the_previous_set(assets, far_spec, tmp_path):
    out = tmp_path / "out"
    r = farm("render", assets, "-o", out, "--spec", far_spec, *TINY)
    assert r.returncode == 0, r.stderr
    assert all(q["issues"] == [] for q in the_object(out)["quality"])  # a good set
    box = out / "views" / "Box"
    before = contents(box)
    assert sorted(before) == ["000.png", "001.png", "transforms.json"]

    r = farm("render", assets, "-o", out, "--preset", "mvcap", *TINY, "--rerender", "--quality", "fail")
    assert r.returncode == 3, r.stderr
    obj = the_object(out)
    assert obj["status"] == "failed" and obj["attempts"] == 1, obj
    assert f"failed: Box (obj_id 0): {obj['error']}" in r.stderr
    assert contents(box) == before  # the good set, byte for byte, transforms.json included
    assert sorted(p.name for p in (out / "views").iterdir()) == ["Box"]  # no staging folder left
    refused = refused_folder(out, obj["error"])
    kept = contents(refused)
    assert sorted(kept) == sorted(before) and kept["000.png"] != before["000.png"]  # the new, flagged set
    frames = json.loads(kept["transforms.json"])["frames"]
    assert len(frames) == 2 and kept["transforms.json"] != before["transforms.json"]


def test_a_refused_first_render_never_reaches_the_object_folder(assets, tmp_path):
    out = tmp_path / "out"
    r = farm("render", assets, "-o", out, "--preset", "mvcap", *TINY, "--quality", "fail")
    assert r.returncode == 3, r.stderr
    obj = the_object(out)
    assert obj["status"] == "failed" and obj["attempts"] == 1, obj
    assert not (out / "views" / "Box").exists()
    assert sorted(contents(refused_folder(out, obj["error"]))) == ["000.png", "001.png", "transforms.json"]


def test_set_aside_moves_streamed_parts_and_repeats_harmlessly(tmp_path):
    """A worker without shared storage: its streamed parts go to the refused folder, whole."""
    out = tmp_path / "out"
    parts = incoming_dir(str(out), 7)
    parts.mkdir(parents=True)
    (parts / "000.png.part").write_bytes(b"png")
    (parts / "transforms.json.part").write_bytes(b"{}")
    files = [{"name": "000.png", "size": 3}, {"name": "transforms.json", "size": 2}]
    streamed = StreamedFiles(store=None)
    folder = streamed.set_aside(str(out), 7, files)
    assert folder == (out / ".farm" / "refused" / "7").resolve()
    assert contents(folder) == {"000.png": b"png", "transforms.json": b"{}"} and not parts.exists()
    assert streamed.set_aside(str(out), 7, files) == folder and contents(folder)["000.png"] == b"png"
    with pytest.raises(ValueError, match="not allowed"):  # a name that would leave the folder: nothing moves
        streamed.set_aside(str(out), 8, [{"name": "../escape", "size": 1}])
    assert not (out / ".farm" / "refused" / "8").exists()
