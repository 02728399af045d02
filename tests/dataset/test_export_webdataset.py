"""`farm dataset export --format webdataset`: shards that the `webdataset` package reads back,
sample by sample equal to metadata.json and transforms.json; deterministic; resumable after kill -9."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .synthetic_out import make_synthetic_out

wds = pytest.importorskip("webdataset", reason="the webdataset package (dev extra) is not installed")

REPO = Path(__file__).resolve().parents[2]
OBJECTS, VIEWS = 100, 100  # 10,000 records


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wds") / "OUT"
    make_synthetic_out(out, OBJECTS, VIEWS)
    return out


def farm_export(out: Path, *args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "farm", "dataset", "export", str(out), "--format", "webdataset", *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def read_back(folder: Path) -> tuple[dict, list[dict]]:
    index = json.loads((folder / "shards.json").read_text())
    urls = [str(folder / s["file"]) for s in index["shards"]]
    return index, list(wds.WebDataset(urls, shardshuffle=False))


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.tar"))}


@pytest.mark.slow
def test_round_trip_10k_records_match_metadata_and_transforms(synthetic):
    done = farm_export(synthetic, "--shard-size", "300KB")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"exported {OBJECTS * VIEWS} images to {synthetic / 'webdataset'}"
    folder = synthetic / "webdataset"
    index, samples = read_back(folder)
    records = json.loads((synthetic / "metadata.json").read_text())
    assert len(samples) == len(records) == index["samples"] == OBJECTS * VIEWS
    assert [int(s["__key__"]) for s in samples] == [r["img_id"] for r in records]  # metadata.json's order
    objects = {o["obj_id"]: o for o in map(json.loads, (synthetic / "objects.jsonl").read_text().splitlines())}
    transforms: dict[int, dict] = {}
    for sample, record in zip(samples, records):
        meta = json.loads(sample["json"])
        obj = objects[record["obj_id"]]
        image = synthetic / record["path"]
        ext = image.suffix[1:]
        assert sample[ext] == image.read_bytes()
        assert sample["txt"].decode() == record["caption"]
        assert {k: meta[k] for k in ("obj_id", "img_id", "path")} == {k: record[k] for k in ("obj_id", "img_id", "path")}
        assert (meta["uid"], meta["category"], meta["source"]) == (obj["uid"], obj["category"], obj["source"])
        if obj["source"] == "mvimgnet":  # sampled frames have no camera
            assert ext == "jpg" and meta["transform_matrix"] is None and meta["intrinsics"] is None
            continue
        doc = transforms.setdefault(obj["obj_id"], json.loads((image.parent / "transforms.json").read_text()))
        frame = next(f for f in doc["frames"] if f["file_path"] == image.name)
        assert meta["transform_matrix"] == frame["transform_matrix"]
        assert meta["intrinsics"] == {k: doc[k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x")}
    # the index: every shard listed, counts, sizes and hashes true, each under the cap
    assert sorted(p.name for p in folder.iterdir()) == sorted([s["file"] for s in index["shards"]] + ["shards.json"])
    assert len(index["shards"]) > 10
    for entry in index["shards"]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"] <= 300_000
    assert [s["samples"] for s in index["shards"]] == [
        sum(1 for s in samples if s["__url__"].endswith(e["file"])) for e in index["shards"]]


@pytest.mark.slow
def test_shuffle_spreads_an_object_and_is_deterministic(synthetic, tmp_path):
    runs = []
    for n in range(2):
        dest = tmp_path / f"run{n}"
        done = farm_export(synthetic, "--shard-size", "1MB", "--shuffle-seed", "7", "-o", str(dest))
        assert done.returncode == 0, done.stderr
        runs.append((dest, *read_back(dest)))
    (dest, index, samples), (again, _, _) = runs
    assert shard_bytes(dest) == shard_bytes(again)  # the same seed gives the same bytes
    keys = [s["__key__"] for s in samples]
    in_order = [f"{r['img_id']:012d}" for r in json.loads((synthetic / "metadata.json").read_text())]
    assert sorted(keys) == in_order and keys != in_order
    shards_of_object_0 = {s["__url__"] for s in samples if json.loads(s["json"])["obj_id"] == 0}
    assert len(index["shards"]) >= 5 and len(shards_of_object_0) >= 5
    assert not list(dest.glob(".*"))  # no spool or state left behind


@pytest.mark.slow
def test_kill_9_mid_export_then_rerun_gives_identical_shards(synthetic, tmp_path):
    whole = tmp_path / "whole"
    done = farm_export(synthetic, "--shard-size", "300KB", "-o", str(whole))
    assert done.returncode == 0, done.stderr
    expected = shard_bytes(whole)
    assert len(expected) > 50

    dest = tmp_path / "killed"
    proc = farm_export(synthetic, "--shard-size", "300KB", "-o", str(dest), wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(dest.glob("shard-*.tar"))) < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert not (dest / "shards.json").exists(), "the export finished before the kill; the test proves nothing"
    finished = shard_bytes(dest)
    assert 3 <= len(finished) < len(expected)
    for name, data in finished.items():  # no half-written shard under a final name
        assert data == expected[name], name
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.glob("shard-*.tar")}

    done = farm_export(synthetic, "--shard-size", "300KB", "-o", str(dest))
    assert done.returncode == 0, done.stderr
    assert shard_bytes(dest) == expected
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.glob("shard-*.tar") if p.name in before}
    assert len(kept) >= len(before) - 1  # finished shards were skipped, not written again (the last may be re-cut)
    assert sum(kept[n] == before[n] for n in kept) >= len(before) - 1
    assert json.loads((dest / "shards.json").read_text())["shards"] == \
        json.loads((whole / "shards.json").read_text())["shards"]
    assert not list(dest.glob(".*"))  # no temporary shard or resume state left


def test_rerun_after_out_changed_starts_afresh(synthetic, tmp_path):
    out = tmp_path / "OUT"
    make_synthetic_out(out, 4, 10)
    assert farm_export(out, "--shard-size", "8KB").returncode == 0
    first = json.loads((out / "webdataset" / "shards.json").read_text())
    records = json.loads((out / "metadata.json").read_text())[:-7]  # fewer records, fewer shards
    (out / "metadata.json").write_text(json.dumps(records))
    done = farm_export(out, "--shard-size", "8KB")
    assert done.returncode == 0, done.stderr
    index, samples = read_back(out / "webdataset")
    assert index["samples"] == len(samples) == len(records) < first["samples"]
    assert len(list((out / "webdataset").glob("shard-*.tar"))) == len(index["shards"])  # stale shards gone


@pytest.mark.parametrize("args, message", [
    (["--shard-size", "lots"], "--shard-size: 'lots' is not a size"),
    (["--shard-size", "100"], "--shard-size: '100' is out of range"),
    (["-o", "../elsewhere"], "escapes the output folder"),
])
def test_bad_input_is_one_line(synthetic, args, message):
    done = farm_export(synthetic, *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr and done.stderr.count("\n") == 1


def test_missing_metadata_is_refused_before_writing(tmp_path):
    done = farm_export(tmp_path)
    assert done.returncode == 2 and "metadata.json: missing" in done.stderr
    assert not (tmp_path / "webdataset").exists()
