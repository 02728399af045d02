"""What a user must be told about an OUT is told where they look (real `farm dataset` processes):
done objects without captions (validate exits 1 unless --allow-uncaptioned; build and export say
so), views with quality flags and categories taken from a folder name (validate, build, the card
and the gallery count and name them)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from farm.metadata import read_objects, write_objects

from .synthetic_out import make_synthetic_out

REPO = Path(__file__).resolve().parents[2]


def _dataset(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farm", "dataset", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def _uncaptioned_out(tmp_path: Path, drop: int) -> Path:
    """A valid synthetic OUT of 4 done objects, then the captions of the first `drop` removed and
    metadata.json rebuilt: those objects are rendered but not captioned yet."""
    out = tmp_path / "OUT"
    records = make_synthetic_out(out, objects=4, views=3, mvimgnet_every=0)
    for obj in records[:drop]:
        (out / obj["out_rel"] / "captions.json").unlink()
    assert _dataset("build", out).returncode == 0
    return out


def test_validate_fails_on_done_objects_without_captions(tmp_path):
    out = _uncaptioned_out(tmp_path, drop=4)
    assert json.loads((out / "metadata.json").read_text()) == []
    proc = _dataset("validate", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = f"4 of 4 done objects have no captions yet: run `captioner run {out}`"
    assert expected in proc.stdout and proc.stdout.startswith("uncaptioned: views/")
    assert "violation" in proc.stderr and "uncaptioned 1" in proc.stderr
    allowed = _dataset("validate", out, "--allow-uncaptioned")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert f"warning: {expected}" in allowed.stderr and "validate: ok" in allowed.stdout


def test_build_and_export_say_how_many_objects_have_no_captions(tmp_path):
    out = _uncaptioned_out(tmp_path, drop=1)
    note = f"warning: 1 of 4 done objects have no captions yet: run `captioner run {out}`"
    build = _dataset("build", out)
    assert build.returncode == 0 and build.stdout.startswith("built 9 records") and note in build.stderr
    export = _dataset("export", out, "--format", "hf", "--no-progress")
    assert export.returncode == 0 and "exported 9 images" in export.stdout and note in export.stderr
    assert _dataset("validate", out).returncode == 1
    assert _dataset("validate", out, "--allow-uncaptioned").returncode == 0


def test_quality_flags_and_folder_categories_are_counted_and_named(tmp_path):
    out = tmp_path / "OUT"
    make_synthetic_out(out, objects=3, views=4, mvimgnet_every=0)
    objects = read_objects(out)
    objects[0]["quality"] = [{"view": v, "issues": ["clipped"]} for v in range(4)]
    objects[1]["quality"] = [{"view": 2, "issues": ["blank"]}]
    objects[2]["category_from"] = "folder"
    write_objects(out, objects)
    uid0, uid1, uid2 = (o["uid"] for o in objects)

    validate = _dataset("validate", out)
    assert validate.returncode == 0, validate.stdout + validate.stderr  # flags are no violation
    assert (f"warning: quality flags: blank in 1 view(s) of 1 object(s); clipped in 4 view(s) of 1 object(s) "
            f"({uid0}, {uid1})") in validate.stderr
    assert (f"warning: category from the parent folder's name (no --categories entry) for 1 object(s): "
            f"{uid2} ({objects[2]['category']})") in validate.stderr
    assert "quality flags: blank" in _dataset("build", out).stderr

    assert _dataset("card", out).returncode == 0
    card = (out / "README.md").read_text()
    assert "- Done objects with quality flags: 2" in card and "## Quality flags" in card
    assert "| clipped | 4 | 1 | the object touches the image border |" in card
    assert f"| 0 | {uid0} | 4 | clipped 4 |" in card
    assert "### Categories from folder names" in card and f"| 2 | {uid2} | {objects[2]['category']} |" in card
    assert "- Done objects without captions: 0" in card

    assert _dataset("gallery", out).returncode == 0
    page = (out / "gallery" / "index.html").read_text()
    assert ">clipped 4/4</span>" in page and ">blank 1/4</span>" in page and ">category from folder</span>" in page
    assert "captioned by synthetic" in page
