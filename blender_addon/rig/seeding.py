"""Deterministic randomness: the same spec seed and uid give the same numbers everywhere.

Python's hash() is salted per process, so seeds come from SHA-256 instead.

Two kinds of stream:
- `rng_for(seed, *parts)`: a numpy Generator, for draws made once (per object, or per view when
  the view index is one of the parts).
- `view_uniforms(seed, *parts, indices=..., per_view=...)`: counter-based numbers for many views at
  once. View k's numbers are a function of (seed, parts, k) alone, so they do not change with
  the number of views: view k of a 12-view render is view k of a 100-view one.
"""
from __future__ import annotations

import hashlib

import numpy as np

# SplitMix64 (Steele, Lea & Flood 2014): output n of the stream keyed by `key` is
# mix(key + n·GAMMA). Being a function of n, it can be evaluated at any n, vectorised.
SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)
SPLITMIX_MUL_1 = np.uint64(0xBF58476D1CE4E5B9)
SPLITMIX_MUL_2 = np.uint64(0x94D049BB133111EB)
FLOAT53_SCALE = 2.0**-53  # the top 53 bits as a float in [0, 1), like numpy's random()


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from the spec seed and any labels (uid, purpose, view index)."""
    text = "\x1f".join([str(int(seed))] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A numpy Generator for (seed, *parts), stable across machines and numpy versions (PCG64)."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *parts)))


def view_uniforms(seed: int, *parts: object, indices: np.ndarray, per_view: int = 1) -> np.ndarray:
    """Uniform numbers in [0, 1), shape (per_view, len(indices)): column j belongs to view indices[j].

    View k takes outputs k·per_view .. k·per_view + per_view - 1 of the SplitMix64 stream keyed by
    derive_seed(seed, *parts). Plain uint64 arithmetic, so it is the same on every machine and numpy.
    """
    counters = np.asarray(indices, dtype=np.uint64)[None, :] * np.uint64(per_view)
    counters = counters + np.arange(per_view, dtype=np.uint64)[:, None] + np.uint64(1)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as SplitMix64 intends
        z = np.uint64(derive_seed(seed, *parts)) + counters * SPLITMIX_GAMMA
        z = (z ^ (z >> np.uint64(30))) * SPLITMIX_MUL_1
        z = (z ^ (z >> np.uint64(27))) * SPLITMIX_MUL_2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * FLOAT53_SCALE
