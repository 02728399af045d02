"""Sources: objaverse, im3d and mvimgnet turn their real layouts into Assets; bad input is one line."""
from __future__ import annotations

import json
import shutil

import pytest

from farm.sources import SourceError, resolve_assets
from farm.sources.mvimgnet import category_folder

from .dataset_fixtures import GLB_UIDS, objaverse_uid


# --- objaverse -----------------------------------------------------------------------------------
def test_objaverse_cache_with_lvis_categories(objaverse_cache):
    assets = resolve_assets("objaverse", [str(objaverse_cache)], str(objaverse_cache / "lvis-annotations.json"))
    expected = {objaverse_uid(key): category for key, category in GLB_UIDS.values()}
    assert {a.uid: a.category for a in assets} == expected
    assert [a.uid for a in assets] == sorted(expected)  # deterministic order
    for a in assets:
        assert a.source == "objaverse"
        assert a.out_rel == f"views/{a.uid}"
        assert a.path.endswith(f"glbs/000-000/{a.uid}.glb")


def test_objaverse_uid_list_read_against_cache(objaverse_cache, tmp_path):
    duck, can = objaverse_uid("duck"), objaverse_uid("can")
    listing = objaverse_cache / "subset.txt"
    listing.write_text(f"# two objects\n{can}\n\n{duck}\n{duck}\n")
    try:
        assets = resolve_assets("objaverse", [str(listing)], str(objaverse_cache / "lvis-annotations.json"))
        assert [(a.uid, a.category) for a in assets] == sorted([(duck, "duck"), (can, "can")])
        # a list outside the cache is read against the cache root given beside it
        outside = tmp_path / "uids.txt"
        outside.write_text(duck + "\n")
        assets = resolve_assets("objaverse", [str(objaverse_cache), str(outside)],
                                str(objaverse_cache / "lvis-annotations.json"))
        assert [a.uid for a in assets] == [duck]
        with pytest.raises(SourceError, match="needs a cache root"):
            resolve_assets("objaverse", [str(outside)], str(objaverse_cache / "lvis-annotations.json"))
    finally:
        listing.unlink()


def test_objaverse_uid_without_category_is_an_error_naming_it(objaverse_cache, tmp_path):
    lvis = json.loads((objaverse_cache / "lvis-annotations.json").read_text())
    lvis["duck"] = []  # the duck loses its category
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(lvis))
    with pytest.raises(SourceError) as err:
        resolve_assets("objaverse", [str(objaverse_cache)], str(partial))
    message = str(err.value)
    assert objaverse_uid("duck") in message and "never guessed" in message and "\n" not in message
    with pytest.raises(SourceError, match="--categories is required"):
        resolve_assets("objaverse", [str(objaverse_cache)])


def test_objaverse_csv_categories_and_listed_uid_missing_from_cache(objaverse_cache, tmp_path):
    csv = tmp_path / "cats.csv"
    csv.write_text("uid,category\n" + "".join(f"{objaverse_uid(k)},{c}\n" for k, c in GLB_UIDS.values()))
    assert len(resolve_assets("objaverse", [str(objaverse_cache)], str(csv))) == 5
    listing = tmp_path / "list.txt"
    listing.write_text(objaverse_uid("not-downloaded") + "\n")
    with pytest.raises(SourceError, match="not in the cache"):
        resolve_assets("objaverse", [str(objaverse_cache), str(listing)], str(csv))


def test_subsets_are_deterministic(objaverse_cache):
    lvis = str(objaverse_cache / "lvis-annotations.json")
    full = resolve_assets("objaverse", [str(objaverse_cache)], lvis)
    per_cat = resolve_assets("objaverse", [str(objaverse_cache)], lvis, max_per_category=1)
    assert sorted(a.category for a in per_cat) == ["box", "can", "credit_card", "duck"]
    boxes = [a.uid for a in full if a.category == "box"]
    assert [a.uid for a in per_cat if a.category == "box"] == boxes[:1]
    limited = resolve_assets("objaverse", [str(objaverse_cache)], lvis, max_per_category=1, limit=2)
    assert limited == per_cat[:2]
    assert resolve_assets("objaverse", [str(objaverse_cache)], lvis, max_per_category=1, limit=2) == limited
    with pytest.raises(SourceError, match="--limit"):
        resolve_assets("objaverse", [str(objaverse_cache)], lvis, limit=0)
    with pytest.raises(SourceError, match="unknown source option"):
        resolve_assets("objaverse", [str(objaverse_cache)], lvis, max_per_categry=1)


def test_objaverse_not_a_cache(tmp_path):
    (tmp_path / "cats.csv").write_text("a,b\n")
    with pytest.raises(SourceError, match="not an Objaverse cache"):
        resolve_assets("objaverse", [str(tmp_path)], str(tmp_path / "cats.csv"))


# --- im3d ----------------------------------------------------------------------------------------
def test_im3d_class_folders(im3d_root):
    assets = resolve_assets("im3d", [str(im3d_root)])
    assert [(a.uid, a.category, a.out_rel) for a in assets] == [
        ("box_01", "box", "im3d/box_01"),
        ("box_02", "box", "im3d/box_02"),
        ("credit_card_01", "credit_card", "im3d/credit_card_01"),  # a class with an underscore
        ("duck_01", "duck", "im3d/duck_01"),
    ]
    assert all(a.source == "im3d" and a.path.endswith(".glb") for a in assets)
    one = resolve_assets("im3d", [str(im3d_root / "duck_01")])  # one object folder
    assert [a.uid for a in one] == ["duck_01"]


def test_im3d_bad_folders(im3d_root, tmp_path, glb_dir):
    root = tmp_path / "im3d"
    shutil.copytree(im3d_root, root)
    shutil.copyfile(glb_dir / "Box.glb", root / "duck_01" / "extra.glb")
    with pytest.raises(SourceError, match="duck_01 holds 2 mesh files"):
        resolve_assets("im3d", [str(root)])
    (root / "duck_01" / "extra.glb").unlink()
    (root / "not-a-class").mkdir()
    with pytest.raises(SourceError, match="not named <class>_<NN>"):
        resolve_assets("im3d", [str(root)])
    (root / "not-a-class").rmdir()
    (root / "lamp_03").mkdir()
    with pytest.raises(SourceError, match="holds no mesh file"):
        resolve_assets("im3d", [str(root)])


# --- mvimgnet ------------------------------------------------------------------------------------
def test_mvimgnet_sequences_and_category_names(mvimgnet_fixture):
    root, _ = mvimgnet_fixture
    assets = resolve_assets("mvimgnet", [str(root)])  # mvimgnet_category.txt found in the root
    assert [(a.uid, a.category, a.out_rel) for a in assets] == [
        ("12-1f2e3d4c", "remote control", "mvimgnet/remote_control/1f2e3d4c"),
        ("12-2b3c4d5e", "remote control", "mvimgnet/remote_control/2b3c4d5e"),
        ("17-0a1b2c3d", "mug", "mvimgnet/mug/0a1b2c3d"),
    ]
    assert all(a.source == "mvimgnet" and a.path.endswith(a.uid.split("-")[1]) for a in assets)
    # one category folder, or one sequence folder
    assert [a.uid for a in resolve_assets("mvimgnet", [str(root / "17")], str(root / "mvimgnet_category.txt"))] == ["17-0a1b2c3d"]
    seq = resolve_assets("mvimgnet", [str(root / "12" / "1f2e3d4c")], str(root / "mvimgnet_category.txt"))
    assert [a.uid for a in seq] == ["12-1f2e3d4c"]


def test_mvimgnet_json_mapping_and_unknown_id(mvimgnet_fixture, tmp_path):
    root, _ = mvimgnet_fixture
    mapping = tmp_path / "mvimgnet2_category.json"
    mapping.write_text(json.dumps({"12": "Remote Control", "17": "Mug"}))
    assert {a.category for a in resolve_assets("mvimgnet", [str(root)], str(mapping))} == {"Remote Control", "Mug"}
    mapping.write_text(json.dumps({"12": "remote control"}))
    with pytest.raises(SourceError, match=r"category id\(s\) 17 have no name"):
        resolve_assets("mvimgnet", [str(root)], str(mapping))
    empty = tmp_path / "elsewhere" / "empty"  # no mapping file in it or its parent
    empty.mkdir(parents=True)
    with pytest.raises(SourceError, match="--categories is required"):
        resolve_assets("mvimgnet", [str(empty)])


def test_category_folder_names():
    assert category_folder("remote control") == "remote_control"
    assert category_folder("Adapter(Water pipe)") == "Adapter_Water_pipe"
    assert category_folder("Toy butterfly ") == "Toy_butterfly"
    with pytest.raises(SourceError):
        category_folder("..")


def test_unknown_source_and_missing_paths(tmp_path):
    with pytest.raises(SourceError, match="unknown; allowed: folder, objaverse, im3d, mvimgnet"):
        resolve_assets("shapenet", [str(tmp_path)])
    with pytest.raises(SourceError, match="no such folder"):
        resolve_assets("im3d", [str(tmp_path / "nope")])


def test_objaverse_package_cache_layout(objaverse_cache, tmp_path):
    """The objaverse package's own cache: ~/.objaverse/hf-objaverse-v1/glbs/<shard>/<uid>.glb."""
    home = tmp_path / ".objaverse"
    shutil.copytree(objaverse_cache / "glbs", home / "hf-objaverse-v1" / "glbs")
    lvis = str(objaverse_cache / "lvis-annotations.json")
    assert len(resolve_assets("objaverse", [str(home)], lvis)) == 5
    assert len(resolve_assets("objaverse", [str(home / "hf-objaverse-v1" / "glbs")], lvis)) == 5
