"""Fixtures for the captioner tests: tiny random models of real architectures (built once per
session from configs, saved with save_pretrained) and output folders with real RGBA PNGs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .helpers import make_out  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    from .tiny_models import build_llava

    return build_llava(tmp_path_factory.mktemp("tiny-llava"), init_range=0.2)


@pytest.fixture(scope="session")
def tiny_instructblip(tmp_path_factory) -> Path:
    from .tiny_models import build_instructblip

    return build_instructblip(tmp_path_factory.mktemp("tiny-instructblip"), init_factor=8.0)


@pytest.fixture(scope="session")
def tiny_blip2(tmp_path_factory) -> Path:
    from .tiny_models import build_blip2

    return build_blip2(tmp_path_factory.mktemp("tiny-blip2"), init_std=0.2)


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """A real broker on an ephemeral port, its state in tmp. Caption leases last 4 s here (300 s by
    default) so that a killed captioner's leases come back within the test."""
    from farm import broker as broker_mod
    from farm.broker import captions as broker_captions

    monkeypatch.setattr(broker_captions, "CAPTION_LEASE_S", 4.0)
    made = []

    def start(state: Path):
        b = broker_mod.Broker(state, bind="tcp://127.0.0.1:*")
        thread = b.serve_in_thread()
        made.append((b, thread))
        return b.wait_ready()

    yield start
    for b, thread in made:
        b.stop()
        thread.join(timeout=10)


@pytest.fixture
def out_factory(tmp_path):
    def factory(objects, name="out", **kwargs):
        return make_out(tmp_path / name, objects, **kwargs)

    return factory
