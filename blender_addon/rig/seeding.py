"""Deterministic randomness: the same spec seed and uid give the same numbers everywhere.

Python's hash() is salted per process, so seeds come from SHA-256 instead.
"""
from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from the spec seed and any labels (uid, purpose, view index)."""
    text = "\x1f".join([str(int(seed))] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A numpy Generator for (seed, *parts), stable across machines and numpy versions (PCG64)."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *parts)))
