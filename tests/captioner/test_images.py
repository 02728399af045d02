"""Image loading (RGBA over a background, truncated files) and the threaded prefetch queue."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captioner.images import BackgroundError, Prefetcher, load_rgb, parse_background


def _rgba(path: Path, alpha: int) -> Path:
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = alpha
    Image.fromarray(arr, "RGBA").save(path)
    return path


def test_rgba_composited_on_background(tmp_path):
    clear = _rgba(tmp_path / "clear.png", 0)
    solid = _rgba(tmp_path / "solid.png", 255)
    half = _rgba(tmp_path / "half.png", 128)
    assert load_rgb(clear).getpixel((0, 0)) == (255, 255, 255)
    assert load_rgb(clear, (0, 0, 0)).getpixel((0, 0)) == (0, 0, 0)
    assert load_rgb(solid).getpixel((0, 0)) == (200, 0, 0)
    r, g, b = load_rgb(half, (0, 0, 0)).getpixel((0, 0))
    assert 95 <= r <= 105 and g == 0 and b == 0
    assert load_rgb(half).mode == "RGB"


def test_parse_background():
    assert parse_background("white") == (255, 255, 255)
    assert parse_background("#102030") == (16, 32, 48)
    assert parse_background("1,2,3") == (1, 2, 3)
    with pytest.raises(BackgroundError, match="background"):
        parse_background("mauve-ish")


def _truncated(path: Path) -> Path:
    good = tmp = path.with_suffix(".full.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8), "RGBA").save(tmp)
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_png_raises_at_load(tmp_path):
    bad = _truncated(tmp_path / "bad.png")
    with pytest.raises(OSError):
        load_rgb(bad)


def test_prefetcher_keeps_order_and_reports_errors(tmp_path):
    paths = [_rgba(tmp_path / f"{i}.png", 255) for i in range(10)]
    bad = _truncated(tmp_path / "bad.png")
    items = [(i, p) for i, p in enumerate(paths)]
    items.insert(4, ("bad", bad))
    pre = Prefetcher(threads=3, depth=4)
    try:
        pre.add(items)
        got = []
        while pre.pending():
            got.extend(pre.take(3))
        assert [d.item for d in got] == [i for i, _ in items]
        errors = [d for d in got if d.error]
        assert [d.item for d in errors] == ["bad"] and errors[0].error.startswith("cannot read image")
        assert all(d.image is not None for d in got if not d.error)
        assert pre.stats.decoded == 11 and pre.stats.decode_errors == 1
    finally:
        pre.close()


def test_prefetcher_decodes_ahead(tmp_path):
    """With time to work ahead, the consumer does not wait for decoding."""
    paths = [_rgba(tmp_path / f"{i}.png", 255) for i in range(16)]
    pre = Prefetcher(threads=2, depth=16)
    try:
        pre.add((i, p) for i, p in enumerate(paths))
        deadline = time.monotonic() + 10
        while pre.ready() < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pre.ready() == 16
        before = pre.stats.wait_s
        assert len(pre.take(16)) == 16
        assert pre.stats.wait_s - before == 0.0
    finally:
        pre.close()
