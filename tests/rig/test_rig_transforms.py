"""transforms.json: contract keys, NeRF-synthetic conventions and an atomic round trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from blender_addon.rig.cameras import c2w_from_view
from blender_addon.rig.patterns import sample_views
from blender_addon.rig.presets import load_preset
from blender_addon.rig.transforms import (
    TransformsError,
    build_transforms,
    frame_matrices,
    read_transforms,
    write_transforms,
)

NORMALIZATION = {"scale": 0.25, "offset": [0.1, -0.2, 0.0], "radius": 0.866}


def mvcap_transforms(uid="chair_01", count=None):
    spec = load_preset("mvcap")
    views = sample_views(spec, uid)[:count]
    return spec, views, build_transforms(spec, uid, views, NORMALIZATION, [f"{v.index:03d}.png" for v in views])


def test_top_level_follows_the_contract():
    spec, views, data = mvcap_transforms()
    assert data["camera_angle_x"] == pytest.approx(2 * math.atan(16 / 35))
    assert (data["fl_x"], data["fl_y"], data["cx"], data["cy"], data["w"], data["h"]) == (560.0, 560.0, 256.0, 256.0, 512, 512)
    assert data["uid"] == "chair_01" and data["spec_hash"] == spec.spec_hash()
    assert data["normalization"] == NORMALIZATION
    assert len(data["frames"]) == 100


def test_frames_hold_c2w_in_gl_axes_and_the_view_angles():
    _, views, data = mvcap_transforms()
    for view, frame in zip(views, data["frames"]):
        assert frame["file_path"] == f"{view.index:03d}.png"
        assert np.array(frame["transform_matrix"]) == pytest.approx(c2w_from_view(view))
        assert (frame["azimuth_deg"], frame["elevation_deg"], frame["distance"], frame["roll_deg"]) == (
            view.azimuth_deg, view.elevation_deg, view.distance, view.roll_deg)


def test_write_then_read_round_trips_exactly(tmp_path):
    _, _, data = mvcap_transforms(count=5)
    path = write_transforms(tmp_path / "views" / "transforms.json", data)
    assert read_transforms(path) == data
    assert frame_matrices(read_transforms(path)).shape == (5, 4, 4)
    assert [p.name for p in path.parent.iterdir()] == ["transforms.json"]  # no temporary left


def test_build_refuses_mismatched_inputs():
    spec, views, _ = mvcap_transforms(count=3)
    with pytest.raises(ValueError, match="3 views but 2 file names"):
        build_transforms(spec, "u", views, NORMALIZATION, ["a.png", "b.png"])
    with pytest.raises(ValueError, match="offset"):
        build_transforms(spec, "u", views, {"scale": 1.0}, ["a", "b", "c"])


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("fl_x"), "'fl_x'"),
    (lambda d: d["frames"][1].pop("transform_matrix"), "frames[1] is missing 'transform_matrix'"),
    (lambda d: d["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]), "must be 4x4"),
])
def test_read_rejects_files_off_the_contract_with_one_line(tmp_path, mutate, needle):
    _, _, data = mvcap_transforms(count=2)
    mutate(data)
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TransformsError) as exc_info:
        read_transforms(path)
    assert needle in str(exc_info.value) and "\n" not in str(exc_info.value)


def test_read_reports_broken_json(tmp_path):
    path = tmp_path / "transforms.json"
    path.write_text('{"frames": [')
    with pytest.raises(TransformsError, match="not valid JSON"):
        read_transforms(path)
