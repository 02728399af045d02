"""Seeded streams: stable numbers, and per-view draws that do not depend on which views are drawn."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.rig.seeding import derive_seed, view_uniforms

MASK64 = (1 << 64) - 1


def splitmix64_floats(key, count):
    """The reference SplitMix64 generator, one output at a time, as floats in [0, 1)."""
    state, out = key, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(((z ^ (z >> 31)) >> 11) * 2.0**-53)
    return out


def test_view_uniforms_are_the_splitmix64_stream_split_by_view():
    got = view_uniforms(3, "uid", "jitter", indices=np.arange(5), per_view=2)
    assert got.shape == (2, 5)
    expected = splitmix64_floats(derive_seed(3, "uid", "jitter"), 10)
    assert got.T.ravel().tolist() == expected


def test_view_k_depends_on_k_alone():
    every = view_uniforms(0, "uid", "roll", indices=np.arange(1000), per_view=3)
    some = view_uniforms(0, "uid", "roll", indices=np.array([999, 7, 0]), per_view=3)
    assert np.array_equal(some, every[:, [999, 7, 0]])


def test_view_uniforms_look_uniform_and_differ_by_purpose():
    values = view_uniforms(0, "uid", "directions", indices=np.arange(20000))[0]
    assert values.min() >= 0.0 and values.max() < 1.0
    assert values.mean() == pytest.approx(0.5, abs=0.01)
    assert np.histogram(values, bins=10, range=(0, 1))[0].min() > 1800
    other = view_uniforms(0, "uid", "distance", indices=np.arange(20000))[0]
    assert abs(np.corrcoef(values, other)[0, 1]) < 0.03


def test_pinned_stream_catches_changes():
    # If this changes, every dataset rendered before renders different poses.
    got = view_uniforms(0, "pinned-uid", "directions", indices=np.array([0, 41]))[0]
    assert got.tolist() == pytest.approx([0.7520054046723104, 0.4028006186464177], abs=1e-15)
