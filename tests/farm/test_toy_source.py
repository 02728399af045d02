"""A source that only a plugin adds: a toy source registered through the `mvcap.sources` entry
point, run through `farm render` end to end (CLI, embedded broker, worker, spawned render child),
then found, checked and described by the dataset tools. Nothing in the farm names it."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from PIL import Image

from .conftest import farm

# Discovery: a text list `uid,category,picture`. Out_rel rule: copies/<category>/<uid>.
# Task kind: `copy`, the picture copied once per view, no bpy. Validation: copied.json marks done.
TOY_MODULE = '''
import json
import shutil
from pathlib import Path

from blender_addon.contract.layout import check_identifier, view_filename
from farm.sources import Asset, FoundObject, Source
from farm.sources.base import subdirs


class CopySource(Source):
    name = "toycopy"
    task_kind = "copy"
    marker = "copied.json"
    structure = "copies/<category>/<uid>/000.png ...  toy copies, with copied.json"

    def assets(self, paths, categories_path):
        found = []
        for listing in paths:
            for line in Path(listing).read_text().splitlines():
                uid, category, picture = line.split(",")
                found.append(Asset(uid, str(Path(picture).resolve()), category, self.name, self.rel(uid, category)))
        return sorted(found, key=lambda a: a.uid)

    def rel(self, uid, category):
        return f"copies/{check_identifier(category, 'category')}/{check_identifier(uid)}"

    def expected_out_rel(self, record):
        return self.rel(record["uid"], record["category"])

    def views_per_object(self, spec_views, views):
        return views or 2

    def object_folders(self, out):
        return [folder for category in subdirs(out / "copies") for folder in subdirs(category)]

    def found_object(self, folder, marker):
        return FoundObject(folder, marker["uid"], folder.parent.name, len(marker["files"]))

    def provenance(self, marker):
        return {"Toy copies": str(len(marker["files"]))}

    def run_task(self, asset, out_dir, options, progress):
        files = [view_filename(i) for i in range(int(options.get("frames") or 2))]
        for i, name in enumerate(files):
            shutil.copyfile(asset["path"], Path(out_dir) / name)
            progress(i + 1, len(files))
        (Path(out_dir) / self.marker).write_text(json.dumps({"uid": asset["uid"], "files": files}))
        return {"uid": asset["uid"], "views": len(files), "files": files + [self.marker],
                "missing_textures": [], "quality": [], "normalization": None, "timings": {}}


SOURCE = CopySource()
'''


def install_toy_plugin(site: Path, monkeypatch) -> None:
    """The plugin as an installed distribution would leave it (a module and its dist-info), on the
    PYTHONPATH of the `farm` processes (farm_env starts from this environment)."""
    site.mkdir()
    (site / "toy_copy_source.py").write_text(TOY_MODULE)
    info = site / "toy_copy_source-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-copy-source\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mvcap.sources]\ntoycopy = toy_copy_source:SOURCE\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))


def test_a_plugin_source_runs_through_farm_render(tmp_path, monkeypatch):
    install_toy_plugin(tmp_path / "site", monkeypatch)
    listing = tmp_path / "pictures.txt"
    rows = []
    for uid, category, colour in (("a", "duck", (200, 180, 0)), ("b", "box", (90, 60, 30))):
        Image.new("RGB", (16, 16), colour).save(tmp_path / f"{uid}.png")
        rows.append(f"{uid},{category},{tmp_path / f'{uid}.png'}")
    listing.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"

    assert "toycopy" in farm("render", "--help").stdout  # --source choices come from the registry
    r = farm("render", listing, "-o", out, "--source", "toycopy", "--views", "3", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr

    objects = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    assert [(o["uid"], o["source"], o["out_rel"], o["status"], o["views"]) for o in objects] == [
        ("a", "toycopy", "copies/duck/a", "done", 3), ("b", "toycopy", "copies/box/b", "done", 3)]
    for o in objects:
        folder = out / o["out_rel"]
        assert sorted(p.name for p in folder.iterdir()) == ["000.png", "001.png", "002.png", "copied.json"]
        assert (folder / "002.png").read_bytes() == (tmp_path / f"{o['uid']}.png").read_bytes()
    db = sqlite3.connect(out / ".farm" / "state.sqlite")
    assert db.execute("SELECT DISTINCT kind FROM tasks WHERE queue = 'render'").fetchall() == [("copy",)]
    db.close()

    # discovery: a finished folder objects.jsonl does not list is found by its source's marker and
    # reported by `farm dataset build`; it gets no obj_id (only the farm's store gives them)
    full = (out / "objects.jsonl").read_text()
    only_a = full.splitlines(keepends=True)[0]
    (out / "objects.jsonl").write_text(only_a)
    r = farm("dataset", "build", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 finished folder(s) on disk are not in objects.jsonl" in r.stdout and "copies/box/b" in r.stdout
    assert (out / "objects.jsonl").read_text() == only_a
    (out / "objects.jsonl").write_text(full)
    r = farm("dataset", "build", out)
    assert r.returncode == 0, r.stdout + r.stderr
    r = farm("dataset", "validate", out)  # not captioned: a violation unless allowed
    assert r.returncode == 1 and "2 of 2 done objects have no captions yet" in r.stdout, r.stdout + r.stderr
    r = farm("dataset", "validate", out, "--allow-uncaptioned")
    assert r.returncode == 0, r.stdout + r.stderr

    r = farm("dataset", "card", out)
    assert r.returncode == 0, r.stdout + r.stderr
    card = (out / "README.md").read_text()
    assert "copies/<category>/<uid>/000.png ...  toy copies, with copied.json" in card
    assert "- Toy copies: `3` (2 objects)" in card and "| toycopy | 2 | 0 | 0 | 6 | 0 |" in card

    # validation: the source's marker and out_rel rule
    (out / "copies" / "box" / "b" / "copied.json").unlink()
    shutil.move(out / "copies" / "duck" / "a", out / "copies" / "duck" / "moved")
    lines = (out / "objects.jsonl").read_text().replace('"copies/duck/a"', '"copies/duck/moved"')
    (out / "objects.jsonl").write_text(lines)
    r = farm("dataset", "validate", out)
    assert r.returncode == 1
    assert "missing_file: copies/box/b/copied.json" in r.stdout + r.stderr
    assert "out_rel 'copies/duck/moved' is not where the layout puts a toycopy object (expected 'copies/duck/a')" \
        in r.stdout + r.stderr
