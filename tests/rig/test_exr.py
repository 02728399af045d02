"""rig/exr.py: the EXR reader and writer the passes use, checked against the OpenEXR package."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.rig import exr


def channels(h=37, w=53):
    rng = np.random.default_rng(0)
    return {"Z": rng.normal(size=(h, w)).astype(np.float32), "X": np.zeros((h, w), np.float32),
            "Y": np.linspace(-1, 1, h * w, dtype=np.float32).reshape(h, w)}


def test_round_trip_is_exact_and_compressed(tmp_path):
    data = channels()
    exr.write(tmp_path / "a.exr", data)
    back = exr.read(tmp_path / "a.exr")
    assert sorted(back) == ["X", "Y", "Z"] and all(np.array_equal(back[k], data[k]) for k in data)
    assert (tmp_path / "a.exr").stat().st_size < 37 * 53 * 4 * 3  # the zeros and the ramp compress


def test_files_agree_with_the_openexr_package(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")
    data = channels(20, 17)
    exr.write(tmp_path / "ours.exr", data)
    with OpenEXR.File(str(tmp_path / "ours.exr"), separate_channels=True) as theirs:
        assert all(np.array_equal(theirs.channels()[k].pixels, data[k]) for k in data)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {k: v.copy() for k, v in data.items()}) as image:
        image.write(str(tmp_path / "theirs.exr"))
    back = exr.read(tmp_path / "theirs.exr")
    assert all(np.array_equal(back[k], data[k]) for k in data)


def test_not_an_exr_is_a_one_line_error(tmp_path):
    (tmp_path / "x.exr").write_bytes(b"<html>not an image</html>")
    with pytest.raises(exr.ExrError, match=r"^x.exr: not an OpenEXR file$"):
        exr.read(tmp_path / "x.exr")
