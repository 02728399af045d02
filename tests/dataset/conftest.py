"""Session fixtures for the dataset tests: each source's real layout (see dataset_fixtures)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .dataset_fixtures import GLB_UIDS, RENDER_ARGS, build_mixed_out, build_mvimgnet, objaverse_uid


@pytest.fixture(scope="session")
def objaverse_cache(glb_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("objaverse")
    shard = root / "glbs" / "000-000"
    shard.mkdir(parents=True)
    lvis: dict[str, list[str]] = {}
    for name, (key, category) in GLB_UIDS.items():
        uid = objaverse_uid(key)
        shutil.copyfile(glb_dir / name, shard / f"{uid}.glb")
        lvis.setdefault(category, []).append(uid)
    lvis["airliner"] = [objaverse_uid("not-downloaded")]  # in LVIS, not in this cache
    (root / "lvis-annotations.json").write_text(json.dumps(lvis))
    return root


@pytest.fixture(scope="session")
def im3d_root(glb_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("im3d")
    for folder, name in (("duck_01", "Duck.glb"), ("box_01", "Box.glb"), ("box_02", "BoxTextured.glb"),
                         ("credit_card_01", "credit-card.glb")):
        (root / folder).mkdir()
        shutil.copyfile(glb_dir / name, root / folder / name)
    return root


@pytest.fixture(scope="session")
def mvimgnet_fixture(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mvimgnet")
    return root, build_mvimgnet(root)


@pytest.fixture(scope="session")
def mixed_out(objaverse_cache, im3d_root, mvimgnet_fixture, broken_dir, tmp_path_factory) -> tuple[Path, list[dict]]:
    """One OUT from three real `farm render --source ...` runs (needs bpy): objaverse (5 real GLBs
    and one HTML page saved as .glb, which fails), im3d (4 objects), mvimgnet (2 sequences sampled,
    1 with too few sharp frames, which fails); captions.json as the captioner writes it. Not yet
    built by `farm dataset build`."""
    pytest.importorskip("bpy")

    base = tmp_path_factory.mktemp("mixed")
    cache = base / "objaverse"
    shutil.copytree(objaverse_cache, cache)
    broken_uid = objaverse_uid("html-page")
    shutil.copyfile(broken_dir / "html-page-not-glb.glb", cache / "glbs" / "000-000" / f"{broken_uid}.glb")
    lvis = json.loads((cache / "lvis-annotations.json").read_text())
    lvis["rocking_chair"] = [broken_uid]
    (cache / "lvis-annotations.json").write_text(json.dumps(lvis))
    mv_root, _ = mvimgnet_fixture
    out = base / "OUT"
    objects = build_mixed_out(out, [
        ("objaverse", [cache], ["--categories", str(cache / "lvis-annotations.json"), *RENDER_ARGS]),
        ("im3d", [im3d_root], ["--preset", "im3d", *RENDER_ARGS]),
        ("mvimgnet", [mv_root], ["--views", "30"]),  # 30 frames per sequence, at least 30 usable
    ])
    return out, objects


@pytest.fixture
def built_copy(mixed_out, tmp_path) -> Path:
    """A private, built copy of the mixed OUT, for tests that change it."""
    from farm.dataset import build_dataset

    src, _ = mixed_out
    out = tmp_path / "OUT"
    shutil.copytree(src, out)
    build_dataset(out)
    return out
