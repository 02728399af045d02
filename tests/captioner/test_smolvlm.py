"""The `fast` preset's architecture, SmolVLM (Idefics3), on a tiny randomly initialised model built
from a config and saved with save_pretrained: a real Idefics3Processor (image splitting into tiles
with <row_i_col_j> tokens plus a global image, SmolVLM's special tokens and chat template) and the
captioner's real loading, generation and engine code. Real PNGs; no output is faked."""
from __future__ import annotations

import json
import shutil
from functools import partial

import pytest

from blender_addon.contract.categories import names_category
from captioner.engine import CaptionEngine
from captioner.images import load_rgb
from captioner.models import PRESETS, ChatBackend, GenerationSettings, load_backend
from captioner.prompts import CHAT_PROMPT, forced_prefix, render_prompt
from captioner.runner import run_out

from .helpers import assert_forced_prefix_route, make_out, write_view_png

CATEGORIES = ["rocking_chair", "airliner", "mug", "teapot", "zebra_crossing", "table_lamp"]
OBJECTS = [("chair01", "rocking_chair", 3), ("plane01", "airliner", 2), ("zc01", "zebra_crossing", 2),
           ("harm01", "harmonica", 2)]


@pytest.fixture(scope="module")
def tiny_smolvlm(tmp_path_factory):
    from .tiny_models import build_smolvlm

    return build_smolvlm(tmp_path_factory.mktemp("tiny-smolvlm"), init_range=0.2)


@pytest.fixture(scope="module")
def backend(tiny_smolvlm):
    return load_backend(str(tiny_smolvlm))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real PNGs of different sizes; every other one is cropped wide, so that the processor splits
    images into different numbers of tiles and the batch pads the tile dimension too."""
    folder = tmp_path_factory.mktemp("smol-imgs")
    out = []
    for i in range(len(CATEGORIES)):
        size = 40 + 4 * i
        write_view_png(folder / f"{i:03d}.png", seed=200 + i, size=size)
        image = load_rgb(folder / f"{i:03d}.png")
        out.append(image.crop((0, 0, size, size // 2)) if i % 2 else image)
    return out


def _prompts():
    return [render_prompt(CHAT_PROMPT, c) for c in CATEGORIES]


def test_smolvlm_loads_through_the_chat_route(backend):
    import torch

    assert isinstance(backend, ChatBackend)
    assert backend.loaded.model_type == "idefics3"
    assert type(backend.model).__name__ == "Idefics3ForConditionalGeneration"
    assert type(backend.processor).__name__ == "Idefics3Processor"
    assert backend._nested_images, "Idefics3 takes one list of images per prompt"
    assert backend.device == "cpu" and next(backend.model.parameters()).dtype == torch.float32
    assert backend.tokenizer.padding_side == "left"
    text = backend.chat_text("Describe it.", None)
    assert text == "<|im_start|>User:<image>Describe it.<end_of_utterance>\nAssistant:"
    assert backend.chat_text("Describe it.", "The mug in the image").endswith("Assistant: The mug in the image")


def test_processor_expands_images_into_tiles(backend, images):
    """What the real processor hands the model: one <image> per tile position, row/col tokens,
    a global image; wide images have fewer tiles, padded in pixel_values."""
    prompts = _prompts()[:2]
    inputs = backend.processor(images=[[im] for im in images[:2]], text=[backend.chat_text(p, None) for p in prompts],
                               padding=True, return_tensors="pt")
    ids = inputs["input_ids"]
    seq = backend.processor.image_seq_len
    square, wide = (backend.tokenizer.convert_ids_to_tokens(row) for row in ids.tolist())
    assert square.count("<image>") == 5 * seq and wide.count("<image>") == 3 * seq  # 2x2 + global, 1x2 + global
    assert "<row_2_col_2>" in square and "<row_2_col_1>" not in wide and "<global-img>" in wide
    assert inputs["pixel_values"].shape[:2] == (2, 5)
    assert inputs["pixel_attention_mask"][1, 3:].sum() == 0, "the wide image's missing tiles are padding"
    assert wide[0] == "<pad>" and square[0] != "<pad>"  # left padding


@pytest.mark.parametrize("generation", [GenerationSettings(max_new_tokens=10),
                                        GenerationSettings(max_new_tokens=10,
                                                           repetition_penalty=PRESETS["fast"].generation.repetition_penalty)],
                         ids=["greedy", "fast"])
def test_smolvlm_batch_equals_one_by_one(backend, images, generation):
    backend.generation = generation
    prompts = _prompts()
    lengths = {len(backend.processor(images=[[im]], text=[backend.chat_text(p, None)])["input_ids"][0])
               for im, p in zip(images, prompts)}
    assert len(lengths) > 1, "inputs of different lengths, so the batch is padded on the left"
    batched = backend.generate(images, prompts)
    single = [backend.generate([im], [p])[0] for im, p in zip(images, prompts)]
    assert len(batched) == len(images) and all(batched)
    assert batched == single
    assert len(set(batched)) > 1, "different images give different captions (the test can fail)"


def test_smolvlm_forced_prefix_names_the_category(backend, images):
    assert_forced_prefix_route(backend, images, _prompts(), CATEGORIES)


def test_smolvlm_engine_captions_every_image(backend, tmp_path):
    """The engine with SmolVLM: batches across objects equal batches of 1, every image gets a caption
    that names its category (the forced route where the random model does not)."""
    backend.generation = GenerationSettings(max_new_tokens=8)
    out4 = make_out(tmp_path / "b4", OBJECTS)
    out1 = tmp_path / "b1"
    shutil.copytree(out4, out1)
    stats = {}
    for out, batch in ((out4, 4), (out1, 1)):
        factory = partial(CaptionEngine, backend, prompt_template=CHAT_PROMPT, batch_size=batch, preset="fast",
                          decode_threads=2)
        stats[batch] = run_out(out, factory)
    total = sum(v for _, _, v in OBJECTS)
    assert stats[4]["captioned"] == stats[1]["captioned"] == total and stats[4]["failed"] == 0
    assert stats[4]["batches"] == 3 and stats[1]["batches"] == total
    assert stats[4]["forced"] > 0
    for uid, category, views in OBJECTS:
        doc4 = json.loads((out4 / "views" / uid / "captions.json").read_text())
        doc1 = json.loads((out1 / "views" / uid / "captions.json").read_text())
        assert doc4["captions"] == doc1["captions"], uid
        assert len(doc4["captions"]) == views
        for entry in doc4["captions"]:
            assert entry["error"] is None and entry["caption"]
            assert names_category(entry["caption"], category), entry
            if entry["route"] == "forced_prefix":
                assert entry["caption"].startswith(forced_prefix(category))
