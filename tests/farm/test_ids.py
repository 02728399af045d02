"""Ids never change once given: the img_id stride is fixed per OUT at its first submit and recorded
(state and objects.jsonl), the store alone gives obj_ids, and an older state file still opens."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from blender_addon.rig.spec import ViewSpec
from farm.store import Store, StoreError

from .conftest import copies, farm


def spec(views: int, **render) -> dict:
    data = ViewSpec().with_overrides(views=views, resolution=32).to_dict()
    data["render"].update(render)
    return data


def job(out: Path, views: int, **kw) -> dict:
    return {"name": "t", "out_root": str(out), "spec": spec(views), "views": views, "max_attempts": 3,
            "timeout_s": 60, **kw}


def assets(*uids: str) -> list[dict]:
    return [{"uid": u, "path": f"/assets/{u}.glb", "category": "thing", "source": "folder", "out_rel": f"views/{u}"}
            for u in uids]


def finish_all(store: Store) -> None:
    """Lease and complete every queued render, as a worker would."""
    while True:
        with store.transaction():
            got = store.lease("render", ["w1"])
            if not got:
                return
            task = got[0][1]
            views = task["obj"]["views"]
            store.complete(task["task_id"], task["attempt_id"],
                           result={"views": views, "files": [f"{i:03d}.png" for i in range(views)]})


def lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]


# --- the store (fast) ------------------------------------------------------------------------------
def test_the_stride_is_fixed_at_the_first_submit_and_recorded(tmp_path):
    out = tmp_path / "out"
    store = Store(tmp_path / "s.sqlite")
    store.submit(job(out, 4), assets("a", "b"))
    store.export_objects(str(out))
    assert {o["img_id_stride"] for o in lines(out)} == {100}
    with pytest.raises(StoreError, match=r"c: 150 views need an img_id stride of 1000, but .* obj_id \* 100"):
        store.submit(job(out, 150), assets("c"))
    assert [o["uid"] for o in store.objects(str(out))] == ["a", "b"]  # nothing of the refused submit
    store.submit(job(out, 100), assets("d"))  # up to the stride is fine
    assert [tuple(r) for r in store.db.execute("SELECT img_id_stride FROM outputs")] == [(100,)]

    big = tmp_path / "big"  # a first submit of 150 views fixes 1000; fewer views later keep it
    store.submit(job(big, 150), assets("x"))
    store.submit(job(big, 2), assets("y"))
    store.export_objects(str(big))
    assert {o["img_id_stride"] for o in lines(big)} == {1000}
    store.close()


def test_an_older_state_file_opens_and_resumes_by_its_spec(tmp_path):
    """A state written before render keys and strides (the columns and tables dropped again) opens:
    its done objects get the key of the job that rendered them, so the same spec resumes and another
    is refused; the stride of its ids is fixed from the views they were made with."""
    out, path = tmp_path / "out", tmp_path / "old.sqlite"
    store = Store(path)
    store.submit(job(out, 4), assets("a", "b"))
    finish_all(store)
    store.close()
    db = sqlite3.connect(path)
    for table in ("render_keys", "outputs", "meta"):
        db.execute(f"DROP TABLE {table}")
    for table, column in (("objects", "render_key"), ("tasks", "mode"), ("tasks", "first_view"),
                          ("attempts", "render_key")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.commit()
    db.close()

    store = Store(path)
    assert store.submit(job(out, 4), assets("a", "b"))["skipped"] == 2
    with pytest.raises(StoreError, match=r"2 object\(s\) were rendered with another spec \(render.samples 32 -> 4\)"):
        store.submit({**job(out, 4), "spec": spec(4, samples=4)}, assets("a", "b"))
    assert [tuple(r) for r in store.db.execute("SELECT img_id_stride FROM outputs")] == [(100,)]
    store.close()


def test_a_state_inside_its_out_follows_it_when_moved(tmp_path):
    out = tmp_path / "a" / "out"
    store = Store(out / ".farm" / "state.sqlite")
    store.submit(job(out, 4), assets("a"))
    finish_all(store)
    store.close()
    moved = tmp_path / "b" / "moved"
    moved.parent.mkdir()
    shutil.move(out, moved)
    store = Store(moved / ".farm" / "state.sqlite")
    reply = store.submit(job(moved, 4), assets("a"))
    assert (reply["queued"], reply["skipped"]) == (0, 1)
    assert [(o["obj_id"], o["uid"], o["status"]) for o in store.objects(str(moved))] == [(0, "a", "done")]
    store.close()


# --- real processes --------------------------------------------------------------------------------
@pytest.mark.slow
def test_img_ids_never_change_and_a_larger_stride_is_refused(glb_dir, tmp_path):
    from tests.dataset.dataset_fixtures import fixture_captions

    out = tmp_path / "out"
    tiny = ["--preset", "mvcap", "--resolution", "32", "--samples", "1", "--no-progress"]
    first = copies(glb_dir / "Box.glb", tmp_path / "first" / "box", ["a", "b"])
    r = farm("render", first, "-o", out, *tiny, "--views", "2")
    assert r.returncode == 0, r.stderr

    def build() -> dict[str, int]:
        for o in lines(out):
            folder = out / o["out_rel"]
            files = sorted(p.name for p in folder.glob("*.png"))
            (folder / "captions.json").write_text(json.dumps(fixture_captions(o["uid"], o["category"], files)))
        done = farm("dataset", "build", out)
        assert done.returncode == 0, done.stderr
        return {r["path"]: r["img_id"] for r in json.loads((out / "metadata.json").read_text())}

    ids = build()
    assert sorted(ids.values()) == [0, 1, 100, 101]
    before = (out / "objects.jsonl").read_bytes()
    big = copies(glb_dir / "Box.glb", tmp_path / "big" / "box", ["c"])
    r = farm("render", big, "-o", out, *tiny, "--views", "150")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: c: 150 views need an img_id stride of 1000")
    assert (out / "objects.jsonl").read_bytes() == before

    more = copies(glb_dir / "Box.glb", tmp_path / "more" / "box", ["d"])
    r = farm("render", more, "-o", out, *tiny, "--views", "3")
    assert r.returncode == 0, r.stderr
    after = build()
    assert {p: i for p, i in after.items() if p in ids} == ids  # every existing img_id kept
    assert sorted(i for p, i in after.items() if p not in ids) == [200, 201, 202]
    assert {o["img_id_stride"] for o in lines(out)} == {100}
    r = farm("dataset", "validate", out)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_build_never_gives_or_rewrites_obj_ids(glb_dir, tmp_path):
    out = tmp_path / "out"
    assets_dir = copies(glb_dir / "Box.glb", tmp_path / "in" / "box", ["a", "b", "c"])
    r = farm("render", assets_dir, "-o", out, "--preset", "mvcap", "--views", "1", "--resolution", "32",
             "--samples", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    listed = lines(out)
    kept = "".join(json.dumps(o) + "\n" for o in listed if o["uid"] != "b")
    (out / "objects.jsonl").write_text(kept)  # b is on disk, but objects.jsonl no longer lists it
    r = farm("dataset", "build", out)
    assert r.returncode == 0, r.stderr
    assert "1 finished folder(s) on disk are not in objects.jsonl and were left out" in r.stdout, r.stdout
    assert "views/b" in r.stdout
    assert (out / "objects.jsonl").read_text() == kept  # not rewritten, no id given to b
    assert [(o["obj_id"], o["uid"]) for o in lines(out)] == [(0, "a"), (2, "c")]

    dup = [{**o, "obj_id": 0} for o in listed]
    (out / "objects.jsonl").write_text("".join(json.dumps(o) + "\n" for o in dup))
    r = farm("dataset", "build", out)
    assert r.returncode == 2 and r.stderr.startswith("error: objects.jsonl: obj_id 0 is given to both"), r.stderr
    (out / "objects.jsonl").unlink()
    r = farm("dataset", "build", out)
    assert r.returncode == 2 and "no objects.jsonl, so no obj_ids" in r.stderr, r.stderr
    assert not (out / "objects.jsonl").exists()
