"""Backends on tiny randomly initialised models of real architectures, loaded through the real
loading code from folders written with save_pretrained (no weights are downloaded)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from captioner.images import load_rgb
from captioner.models import PRESETS, BlipBackend, ChatBackend, GenerationSettings, ModelLoadError, load_backend
from captioner.prompts import PAPER_PROMPT, render_prompt

from .helpers import REPO, assert_forced_prefix_route, write_view_png

CATEGORIES = ["rocking_chair", "airliner", "mug", "teapot", "zebra_crossing", "table_lamp", "harmonica", "dog"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    out = []
    for i in range(8):
        write_view_png(folder / f"{i:03d}.png", seed=100 + i, size=40 + 4 * i)  # sizes differ too
        out.append(load_rgb(folder / f"{i:03d}.png"))
    return out


def _prompts():
    return [render_prompt(PAPER_PROMPT, c) for c in CATEGORIES]


def test_llava_loads_as_chat_backend_fp32_cpu(tiny_llava):
    import torch

    backend = load_backend(str(tiny_llava))
    assert isinstance(backend, ChatBackend)
    assert backend.loaded.model_type == "llava"
    assert backend.device == "cpu" and backend.dtype == torch.float32
    assert next(backend.model.parameters()).dtype == torch.float32
    assert backend.tokenizer.padding_side == "left"


@pytest.mark.parametrize("generation", [GenerationSettings(max_new_tokens=12),
                                        GenerationSettings(max_new_tokens=8, num_beams=3, repetition_penalty=1.5)],
                         ids=["greedy", "beams"])
def test_llava_batch_of_8_equals_one_by_one(tiny_llava, images, generation):
    backend = load_backend(str(tiny_llava))
    backend.generation = generation
    prompts = _prompts()
    lengths = {len(backend.tokenizer(backend.chat_text(p, None))["input_ids"]) for p in prompts}
    assert len(lengths) > 1, "prompts of different lengths, so the batch is padded"
    batched = backend.generate(images, prompts)
    single = [backend.generate([im], [p])[0] for im, p in zip(images, prompts)]
    assert batched == single
    assert len(set(batched)) > 1, "different images give different captions (the test can fail)"
    assert all(batched)


def test_blip_family_backends(tiny_instructblip, tiny_blip2):
    iblip = load_backend(str(tiny_instructblip))
    assert isinstance(iblip, BlipBackend) and iblip.loaded.model_type == "instructblip"
    assert iblip.encoder_decoder and iblip.tokenizer.padding_side == "right"  # FlanT5-style LM
    blip2 = load_backend(str(tiny_blip2))
    assert isinstance(blip2, BlipBackend) and blip2.loaded.model_type == "blip-2"
    assert not blip2.encoder_decoder and blip2.tokenizer.padding_side == "left"  # OPT-style LM
    assert blip2.plain_text("Describe it.") == "Question: Describe it. Answer:"


@pytest.mark.parametrize("which", ["tiny_instructblip", "tiny_blip2"])
@pytest.mark.parametrize("generation", [GenerationSettings(max_new_tokens=12), PRESETS["paper"].generation],
                         ids=["greedy", "paper"])
def test_blip_batch_of_8_equals_one_by_one(which, request, images, generation):
    backend = load_backend(str(request.getfixturevalue(which)))
    backend.generation = generation
    prompts = _prompts()
    batched = backend.generate(images, prompts)
    single = [backend.generate([im], [p])[0] for im, p in zip(images, prompts)]
    assert batched == single
    assert len(set(batched)) > 1


@pytest.mark.parametrize("which", ["tiny_llava", "tiny_instructblip", "tiny_blip2"])
def test_forced_prefix_starts_the_answer(which, request, images):
    backend = load_backend(str(request.getfixturevalue(which)))
    assert_forced_prefix_route(backend, images, _prompts(), CATEGORIES)


def test_presets_are_the_papers():
    paper = PRESETS["paper"]
    assert paper.model == "Salesforce/instructblip-flan-t5-xl"
    assert paper.prompt == ("Write a short description for the image, noting that the main instance of the image "
                            "is a {category}.")
    g = paper.generation
    assert (g.num_beams, g.max_new_tokens, g.length_penalty, g.repetition_penalty) == (5, 32, -1.0, 1.5)
    assert paper.batch_size == 64
    assert "SmolVLM" in PRESETS["fast"].model and "Qwen2.5-VL" in PRESETS["quality"].model


def test_missing_weights_give_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_backend("no-such-org/no-such-model")
    text = str(info.value)
    assert "\n" not in text and "--model DIR" in text
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_backend(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        load_backend(str(tmp_path / "empty"))


def test_cli_missing_weights_one_line_no_traceback(tmp_path):
    from .conftest import make_out

    out = make_out(tmp_path / "out", [("a", "mug", 1)])
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "captioner", "run", str(out), "--model", "no-such-org/no-model"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: model 'no-such-org/no-model'")
    assert "Traceback" not in proc.stderr and "--model DIR" in lines[0]


def test_bad_device_and_dtype_are_one_line(tiny_llava):
    with pytest.raises(ModelLoadError, match="device: 'gpu' is unknown"):
        load_backend(str(tiny_llava), device="gpu")
    with pytest.raises(ModelLoadError, match="dtype: 'int3' is unknown"):
        load_backend(str(tiny_llava), dtype="int3")
