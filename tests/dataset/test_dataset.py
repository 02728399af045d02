"""One dataset from three sources: build, validate (and its faults), card, export.

The OUT is real: GLBs rendered with bpy (render_asset), MVImgNet frames sampled (sample_task),
objects.jsonl and captions.json in the farm's and the captioner's formats.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from blender_addon.rig.presets import load_preset
from farm.dataset import build_dataset, validate_dataset
from farm.dataset.card import write_card
from farm.dataset.cli import dataset as dataset_cli
from farm.dataset.export import export_dataset
from farm.metadata import iter_metadata_records

from .dataset_fixtures import CAPTION_MODEL, RENDER_OVERRIDES

pytestmark = pytest.mark.slow


def _metadata(out: Path) -> list[dict]:
    return json.loads((out / "metadata.json").read_text())


def _objects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]


def test_three_sources_build_one_valid_dataset(mixed_out, tmp_path):
    src, objects = mixed_out
    out = tmp_path / "OUT"
    shutil.copytree(src, out)
    assert [o["source"] for o in objects] == ["objaverse"] * 6 + ["im3d"] * 4 + ["mvimgnet"] * 3
    failed = {o["uid"]: o["error"] for o in objects if o["status"] == "failed"}
    assert len(failed) == 2 and all(failed.values())

    report = build_dataset(out)
    assert report.records > 0 and report.objects == 13 and report.unlisted == []
    records = _metadata(out)
    assert records == list(iter_metadata_records(out))  # the one assembly code path
    assert len(records) == report.records == 5 * 6 - 1 + 4 * 6 + 2 * 30  # one failed image caption
    assert {r["obj_id"] for r in records} == {o["obj_id"] for o in objects if o["status"] == "done"}
    assert sorted({o["obj_id"] for o in objects}) == list(range(13))  # dense across sources
    prefixes = {r["path"].split("/")[1] for r in records}
    assert prefixes == {"views", "im3d", "mvimgnet"}
    for r in records:
        assert r["path"].startswith("./") and (out / r["path"]).is_file()
        assert r["img_id"] == r["obj_id"] * 100 + int(Path(r["path"]).stem)
    assert len({r["img_id"] for r in records}) == len(records)

    result = validate_dataset(out)
    assert result.ok, result.kept
    assert result.records == len(records) and result.objects == 13


def test_build_reports_finished_objects_that_objects_jsonl_misses_and_gives_them_no_id(built_copy):
    out = built_copy
    objects = _objects(out)
    kept = [o for o in objects if o["source"] != "mvimgnet"]
    text = "".join(json.dumps(o) + "\n" for o in kept)
    (out / "objects.jsonl").write_text(text)
    report = build_dataset(out)
    # the two sampled sequences (the failed one left no folder), in out_rel order; only the farm gives ids
    assert [rel.split("/")[1] for rel in report.unlisted] == ["mug", "remote_control"]
    assert "2 finished folder(s) on disk are not in objects.jsonl" in report.summary()
    assert (out / "objects.jsonl").read_text() == text
    assert {r["obj_id"] for r in _metadata(out)} <= {o["obj_id"] for o in kept}


def _fault_missing_file(out: Path) -> str:
    victim = next(r["path"] for r in _metadata(out) if r["path"].startswith("./im3d/"))
    (out / victim).unlink()
    return victim


def _edit_metadata(out: Path, edit) -> str:
    """Change metadata.json's records in place; `edit(records)` returns where the fault is."""
    records = _metadata(out)
    where = edit(records)
    (out / "metadata.json").write_text(json.dumps(records))
    return where


def _fault_duplicate_img_id(out: Path) -> str:
    return _edit_metadata(out, lambda r: r[5].update(img_id=r[4]["img_id"]) or "metadata.json[5]")


def _fault_duplicate_obj_id(out: Path) -> str:
    objects = _objects(out)
    objects[7]["obj_id"] = objects[6]["obj_id"]
    (out / "objects.jsonl").write_text("".join(json.dumps(o) + "\n" for o in objects))
    return "objects.jsonl:8"


def _fault_out_rel_escapes(out: Path) -> str:
    objects = _objects(out)
    objects[1]["out_rel"] = "views/../../elsewhere"
    (out / "objects.jsonl").write_text("".join(json.dumps(o) + "\n" for o in objects))
    return "objects.jsonl:2"


def _fault_category(out: Path) -> str:
    obj = next(o for o in _objects(out) if o["source"] == "im3d")
    path = out / obj["out_rel"] / "captions.json"
    doc = json.loads(path.read_text())
    doc["category"] = "teapot"
    path.write_text(json.dumps(doc))
    return f"{obj['out_rel']}/captions.json"


def _fault_caption_names_no_category(out: Path) -> str:
    return _edit_metadata(out, lambda r: r[3].update(caption="a thing on a table") or "metadata.json[3]")


def _fault_stale_metadata(out: Path) -> str:
    return _edit_metadata(out, lambda r: f"obj_id {r.pop()['obj_id']}")


def _fault_path_escapes(out: Path) -> str:
    return _edit_metadata(out, lambda r: r[0].update(path="./views/../../etc/000.png") or "metadata.json[0]")


@pytest.mark.parametrize("fault, kind", [
    (_fault_missing_file, "missing_file"),
    (_fault_duplicate_img_id, "duplicate_id"),
    (_fault_duplicate_obj_id, "duplicate_id"),
    (_fault_out_rel_escapes, "layout"),
    (_fault_category, "category_mismatch"),
    (_fault_caption_names_no_category, "caption_category"),
    (_fault_stale_metadata, "stale_metadata"),
    (_fault_path_escapes, "path_mismatch"),
])
def test_validate_names_each_fault(built_copy, fault, kind):
    runner = CliRunner()
    clean = runner.invoke(dataset_cli, ["validate", str(built_copy)])
    assert clean.exit_code == 0, clean.output
    where = fault(built_copy)
    result = runner.invoke(dataset_cli, ["validate", str(built_copy)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(f"{kind}: ")]
    assert any(where in line for line in lines), result.output


def test_validate_every_violation_is_counted(built_copy):
    objects = _objects(built_copy)
    for obj in objects:
        if obj["source"] == "im3d" and obj["status"] == "done":
            (built_copy / obj["out_rel"] / "000.png").unlink()
    report = validate_dataset(built_copy, check_captions=False)
    # per object: the metadata record, the captions.json entry, and the view count
    assert report.by_kind["missing_file"] == 2 * 4 and report.by_kind["view_count"] == 4
    assert validate_dataset(built_copy, check_files=False, check_captions=False).by_kind["missing_file"] == 4


def test_validate_bad_out_is_usage_error(tmp_path):
    result = CliRunner().invoke(dataset_cli, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(dataset_cli, ["validate", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "missing_file: objects.jsonl" in result.output and "missing_file: metadata.json" in result.output


def test_card_has_provenance(built_copy):
    readme = write_card(built_copy)
    assert readme == built_copy / "README.md"
    text = readme.read_text()
    assert text.startswith("---\n") and text.count("\n---\n") >= 1
    front = text.split("\n---\n", 1)[0]
    for key in ("pretty_name:", "task_categories:", "size_categories:", "license:"):
        assert key in front
    spec = load_preset("mvcap").with_overrides(**RENDER_OVERRIDES)
    im3d_spec = load_preset("im3d").with_overrides(**RENDER_OVERRIDES)
    assert spec.spec_hash() in text and im3d_spec.spec_hash() in text
    assert CAPTION_MODEL in text
    assert "noting that the main instance of the image is a {category}." in text  # the prompt template
    assert "| objaverse | 5 | 1 | 0 | 30 | 29 |" in text
    assert "| mvimgnet | 2 | 1 | 0 | 60 | 60 |" in text
    assert "| remote_control" not in text and "| remote control | 1 |" in text
    assert "only 25 usable frame(s)" in text  # failures with their reasons
    assert "forced_prefix" in text and "Seed:" in text and "bpy" in text
    # the farm's store: one job per `farm render` run, with the full spec
    assert "### Farm jobs (OUT/.farm/state.sqlite)" in text and text.count("| farm render |") == 3
    assert f"<details><summary>Spec {spec.spec_hash()}</summary>" in text and '"num_views": 6' in text
    assert '{"frames": 30}' in text


def test_card_tolerates_a_bare_out(tmp_path):
    write_card(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "No objects." in text and "not recorded" in text


def test_export_hf_imagefolder(built_copy):
    folder, count = export_dataset(built_copy, "hf")
    assert folder == (built_copy / "hf").resolve()
    lines = [json.loads(line) for line in (folder / "train" / "metadata.jsonl").read_text().splitlines()]
    assert count == len(lines) == len(_metadata(built_copy))
    for line in lines:
        image = folder / "train" / line["file_name"]
        assert image.is_file() and os.path.samefile(image, built_copy / line["file_name"])
    assert {line["source"] for line in lines} == {"objaverse", "im3d", "mvimgnet"}
    for line in lines:  # the camera of every rendered view; none for sampled frames
        rendered = line["source"] != "mvimgnet"
        assert (line["transform_matrix"] is not None) == rendered and (line["intrinsics"] is not None) == rendered
        if rendered:
            doc = json.loads((built_copy / line["file_name"]).with_name("transforms.json").read_text())
            frame = next(f for f in doc["frames"] if f["file_path"] == Path(line["file_name"]).name)
            assert line["transform_matrix"] == frame["transform_matrix"] and line["intrinsics"]["fl_x"] == doc["fl_x"]
    assert "configs:" in (folder / "README.md").read_text()
    assert validate_dataset(built_copy).ok  # the export does not disturb OUT
    _load_with_datasets(folder, count)


def _load_with_datasets(folder: Path, count: int) -> None:
    """Load the export with Hugging Face datasets: in this interpreter when it has `datasets`, else
    in MVCAP_HF_PYTHON (an interpreter with datasets; bpy pins numpy<2, which datasets 5 cannot use)."""
    code = (
        "import sys, datasets\n"
        "for kw in ({'data_dir': sys.argv[1]},):\n"
        "    ds = datasets.load_dataset('imagefolder', split='train', **kw)\n"
        "    row = ds[0]\n"
        "    assert row['image'].size[0] > 0 and row['caption'] and 'obj_id' in row, row\n"
        "    assert {'transform_matrix', 'intrinsics'} <= set(ds.column_names), ds.column_names\n"
        "    print(len(ds), sorted(ds.column_names))\n"
        "ds2 = datasets.load_dataset(sys.argv[1], split='train')\n"
        "print(len(ds2))\n"
    )
    python = os.environ.get("MVCAP_HF_PYTHON")
    if not python:
        try:
            import datasets  # noqa: F401
            python = sys.executable
        except ImportError:
            pytest.skip("Hugging Face datasets is not installed here (set MVCAP_HF_PYTHON to an interpreter with it)")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(folder.parent / ".hf-home")}
    done = subprocess.run([python, "-c", code, str(folder)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()[-2:]
    assert first.startswith(f"{count} ") and "'caption'" in first and "'image'" in first and "'file_name'" not in first
    assert second == str(count)
    shutil.rmtree(folder.parent / ".hf-home", ignore_errors=True)


def test_export_refuses_to_write_outside_out(built_copy):
    result = CliRunner().invoke(dataset_cli, ["export", str(built_copy), "--dest", "../elsewhere"])
    assert result.exit_code == 2 and "escapes the output folder" in result.output
    assert not (built_copy.parent / "elsewhere").exists()


def test_build_cli_and_idempotence(built_copy):
    before = (built_copy / "metadata.json").read_bytes()
    result = CliRunner().invoke(dataset_cli, ["build", str(built_copy)])
    assert result.exit_code == 0 and "built" in result.output
    assert (built_copy / "metadata.json").read_bytes() == before
    assert not [p for p in built_copy.iterdir() if p.name.startswith(".") and p.name != ".farm"]  # no temp files


def test_validate_caption_rule_is_the_captioners():
    from blender_addon.contract import categories
    from captioner import engine
    from farm.dataset import validate

    # one rule, in the shared contract, for the captioner's consistency check and for validate
    assert engine.names_category is categories.names_category and validate.categories is categories
    cases = [("The rocking chairs are here", "rocking_chair", True), ("a rocking-chair", "rocking_chair", True),
             ("a chair", "rocking_chair", False), ("Boxes on a shelf", "box", True), ("boxing gloves", "box", False),
             ("the remote control", "remote control", True), ("two mugs", "mug", True), ("smug", "mug", False),
             ("", "mug", False), ("knives", "knife", True), ("anything", "", False)]
    for caption, category, named in cases:
        assert categories.names_category(caption, category) is named, (caption, category)


def test_farm_cli_has_the_dataset_group(built_copy):
    repo = Path(__file__).resolve().parents[2]
    run = [sys.executable, "-m", "farm", "dataset"]
    helped = subprocess.run(run + ["--help"], capture_output=True, text=True, cwd=repo)
    assert helped.returncode == 0
    for command in ("build", "validate", "card", "gallery", "export"):
        assert command in helped.stdout
    ok = subprocess.run(run + ["validate", str(built_copy)], capture_output=True, text=True, cwd=repo)
    assert ok.returncode == 0 and "validate: ok: 113 records, 13 objects" in ok.stdout + ok.stderr
    (built_copy / "objects.jsonl").write_text("not json\n")
    bad = subprocess.run(run + ["build", str(built_copy)], capture_output=True, text=True, cwd=repo)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "line 1 is not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_real_captioner_output_builds_and_validates(mixed_out, tmp_path):
    """`captioner run` with a tiny random LLaVA (built offline) captions the three-source OUT; what it
    writes builds into a metadata.json that passes validate (its forced prefixes name the category)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.captioner.tiny_models import build_llava

    src, objects = mixed_out
    out = tmp_path / "OUT"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("captions.json"))
    model = build_llava(tmp_path / "tiny-llava", init_range=0.2)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "captioner", "run", str(out), "--model", str(model),
                           "--max-new-tokens", "8", "--device", "cpu"], capture_output=True, text=True,
                          cwd=repo, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = build_dataset(out)
    assert report.records == sum(o["views"] for o in objects if o["status"] == "done")
    result = validate_dataset(out)
    assert result.ok, result.kept[:20]
    text = write_card(out).read_text()
    assert str(model) in text and "forced_prefix" in text
