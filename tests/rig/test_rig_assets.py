"""The folder source's rules, shared by the farm and the add-on (rig/assets.py)."""
from __future__ import annotations

import pytest

from blender_addon.rig.assets import AssetListError, folder_asset_records, identifier_problem


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_records_from_folders_and_files(tmp_path):
    _touch(tmp_path / "chairs" / "b.glb")
    _touch(tmp_path / "chairs" / "a.OBJ")
    _touch(tmp_path / "chairs" / "notes.txt")
    single = _touch(tmp_path / "mugs" / "m.ply")
    records = folder_asset_records([tmp_path / "chairs", single], categories={"b": "rocking_chair"})
    assert [r["uid"] for r in records] == ["a", "b", "m"]
    assert [r["category"] for r in records] == ["chairs", "rocking_chair", "mugs"]
    assert [r["category_from"] for r in records] == ["folder", "categories", "folder"]
    assert all(r["out_rel"] == f"views/{r['uid']}" and r["source"] == "folder" for r in records)
    assert records[2]["path"] == str(single.resolve())


def test_bad_paths_are_one_line_errors(tmp_path):
    with pytest.raises(AssetListError, match="no such file or folder"):
        folder_asset_records([tmp_path / "missing"])
    with pytest.raises(AssetListError, match="not a supported mesh file"):
        folder_asset_records([_touch(tmp_path / "readme.txt")])
    _touch(tmp_path / "x" / "same.glb")
    _touch(tmp_path / "y" / "same.stl")
    with pytest.raises(AssetListError, match="'same' appears twice"):
        folder_asset_records([tmp_path / "x", tmp_path / "y"])
    with pytest.raises(AssetListError, match="not allowed"):
        folder_asset_records([_touch(tmp_path / "z" / "..evil.glb")])


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "a\\b", "x..y", "/abs", "tab\there"])
def test_identifier_problem_refuses_escapes(value):
    assert identifier_problem(value)


def test_identifier_problem_accepts_plain_names():
    assert identifier_problem("8f3c2a_rocking-chair.v2") is None
