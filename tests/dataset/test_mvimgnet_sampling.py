"""MVImgNet frame sampling: evenly spaced in time, blurry frames never picked, atomic output."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from blender_addon.scene.errors import AssetError
from farm.sources import resolve_assets
from farm.sources.mvimgnet import FRAMES_JSON
from farm.sources.mvimgnet_frames import frame_sharpness, list_frames, sample_task, select_frames, target_indices

from .dataset_fixtures import draw_frame


def _assets(root: Path) -> dict:
    return {a.uid: a.to_dict() for a in resolve_assets("mvimgnet", [str(root)])}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_target_indices_are_evenly_spaced():
    assert target_indices(10, 30) == list(range(10))
    assert target_indices(100, 5) == [0, 25, 50, 74, 99]
    assert target_indices(7, 1) == [3]
    t = target_indices(40, 30)
    assert len(t) == 30 and t[0] == 0 and t[-1] == 39 and t == sorted(set(t))
    assert max(np.diff(t)) - min(np.diff(t)) <= 1


def test_blurry_targets_fall_back_to_the_nearest_sharp_neighbour():
    sharp = [True] * 21
    for i in (5, 10, 11):
        sharp[i] = False
    # targets 0,5,10,15,20: 5 -> 4 (nearest, earlier first on a tie), 10 -> 9 (11 is blurry too)
    assert select_frames(sharp, 5) == [0, 4, 9, 15, 20]
    assert select_frames([False, False, True], 3) == [2]  # fewer usable frames than asked
    assert select_frames([False] * 4, 2) == []


def test_laplacian_variance_separates_sharp_from_blurred(tmp_path):
    frame = draw_frame(3, 40, seed=7)
    frame.save(tmp_path / "sharp.jpg", quality=92)
    frame.filter(ImageFilter.GaussianBlur(1)).save(tmp_path / "soft.jpg", quality=92)
    sharp, soft = frame_sharpness(tmp_path / "sharp.jpg"), frame_sharpness(tmp_path / "soft.jpg")
    assert sharp > 5 * soft > 0


def test_sample_task_skips_blurred_frames(mvimgnet_fixture, tmp_path):
    root, info = mvimgnet_fixture
    assets = _assets(root)
    uid = "17-0a1b2c3d"  # 40 frames; 0, 7, 8, 20 and 39 blurred; 0 and 39 are targets
    out = tmp_path / "OUT" / assets[uid]["out_rel"]
    result = sample_task(assets[uid], out, {})  # defaults: 30 frames, at least 30 usable
    assert result["views"] == 30 and result["files"] == [f"{i:03d}.jpg" for i in range(30)]
    frames = info[uid]["frames"]
    picked = [frames.index(_sha(out / name)) for name in result["files"]]
    assert picked == sorted(picked) and len(set(picked)) == 30  # in time order, no repeats
    assert not set(picked) & info[uid]["blurred"], "a blurred frame was picked"
    assert picked[0] == 1 and picked[-1] == 38  # the blurred ends fell back to their neighbours
    assert result["source_frames"] == [f"{i:03d}.jpg" for i in picked]
    assert set(result["skipped_blurry"]) == {f"{i:03d}.jpg" for i in info[uid]["blurred"]}
    record = json.loads((out / FRAMES_JSON).read_text())
    assert [f["frame_index"] for f in record["frames"]] == picked
    assert record["category"] == "mug" and record["total_frames"] == 40
    with Image.open(out / "000.jpg") as im:
        assert im.format == "JPEG" and im.size == (320, 240)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no staging folders left


def test_sample_task_fewer_than_min_views_fails_with_a_reason(mvimgnet_fixture, tmp_path):
    root, _ = mvimgnet_fixture
    asset = _assets(root)["12-2b3c4d5e"]  # 32 frames, 7 blurred: 25 usable
    out = tmp_path / "OUT" / asset["out_rel"]
    with pytest.raises(AssetError) as err:
        sample_task(asset, out, {"frames": 30, "min_views": 30})
    message = str(err.value)
    assert "only 25 usable frame(s), at least 30 needed" in message and "7 blurry" in message
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))  # nothing left
    # the minimum is a setting: 20 is enough here
    result = sample_task(asset, out, {"frames": 20, "min_views": 20})
    assert result["views"] == 20 and len(list(out.glob("*.jpg"))) == 20


def test_sample_task_replaces_an_older_attempt_whole(mvimgnet_fixture, tmp_path):
    root, _ = mvimgnet_fixture
    asset = _assets(root)["12-1f2e3d4c"]
    out = tmp_path / "OUT" / asset["out_rel"]
    sample_task(asset, out, {"frames": 30, "min_views": 30})
    (out / "captions.json").write_text("{}")  # stale: belongs to the older frames
    result = sample_task(asset, out, {"frames": 8, "min_views": 8})
    assert sorted(p.name for p in out.iterdir()) == [f"{i:03d}.jpg" for i in range(8)] + [FRAMES_JSON]
    assert result["views"] == 8


def test_sequence_without_frames_fails_alone(tmp_path):
    seq = tmp_path / "mv" / "0" / "deadbeef"
    (seq / "images").mkdir(parents=True)
    (tmp_path / "mv" / "mvimgnet_category.txt").write_text("0,bag\n")
    [asset] = resolve_assets("mvimgnet", [str(tmp_path / "mv")])
    with pytest.raises(AssetError, match="has no frames"):
        sample_task(asset.to_dict(), tmp_path / "OUT" / asset.out_rel, {})
    assert list_frames(seq) == []
