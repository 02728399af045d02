"""Model backends: chat-template vision LLMs, and InstructBLIP / BLIP-2 with plain prompts.

`load_backend(model)` takes a hub id or a local folder, picks the backend from the config's
`model_type`, and loads weights in bf16 on a GPU or fp32 on the CPU. A backend turns a batch of
RGB images plus prompts (and, on the forced route, the start of each answer) into captions.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blender_addon.rig.errors import one_line

from .prompts import CHAT_PROMPT, PAPER_PROMPT, clean_caption, join_prefix


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded; the message is one line and says what to do."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 32
    num_beams: int = 1
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": False,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.num_beams > 1:
            out["length_penalty"] = self.length_penalty
        return out


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    prompt: str
    generation: GenerationSettings
    batch_size: int
    description: str = ""
    # the colour RGBA renders are composited on (captioner --background overrides it)
    background: tuple[int, int, int] = (255, 255, 255)
    prompt_source: str = "this project's prompt"  # where the prompt comes from, for captions.json and the card
    weights: str = ""  # the approximate download size of `model`, from its model card (the offline hint says it)


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        model="Salesforce/instructblip-flan-t5-xl",
        prompt=PAPER_PROMPT,
        generation=GenerationSettings(max_new_tokens=32, num_beams=5, length_penalty=-1.0, repetition_penalty=1.5),
        batch_size=64,
        weights="approximately 16 GB (fp32 safetensors)",
        description="the paper's setup: InstructBLIP FlanT5-XL, 5 beams, 32 new tokens, length_penalty -1, "
                    "repetition_penalty 1.5; renders on black, as InstructBLIP saw them",
        # Omniview_Tuning scripts/caption_VLM_instrucBLIP.py:61 loads each render with
        # Image.open(p).convert("RGB"): alpha is dropped, leaving the RGB Blender wrote under it,
        # black for a transparent film. Compositing onto black shows the model that image (edge
        # pixels, half transparent, come out darker here than its straight-alpha RGB).
        background=(0, 0, 0),
        prompt_source=("the paper's category-guided prompt (ECCV 2024 text); its released script "
                       "(Omniview_Tuning@0d82177 scripts/caption_VLM_instrucBLIP.py:63) sends 'write a short "
                       "description for the image.' and keeps the guided prompt as a comment (line 72); it had no "
                       "consistency re-caption, so --no-consistency reproduces it"),
    ),
    "fast": Preset(
        name="fast",
        model="HuggingFaceTB/SmolVLM-256M-Instruct",
        prompt=CHAT_PROMPT,
        generation=GenerationSettings(max_new_tokens=40, num_beams=1, repetition_penalty=1.1),
        batch_size=8,
        weights="approximately 0.5 GB",
        description="a small chat VLM that is practical on a CPU; greedy decoding",
    ),
    "quality": Preset(
        name="quality",
        model="Qwen/Qwen2.5-VL-7B-Instruct",
        prompt=CHAT_PROMPT,
        generation=GenerationSettings(max_new_tokens=48, num_beams=1, repetition_penalty=1.05),
        batch_size=16,
        weights="approximately 16.6 GB (bf16)",
        description="a larger Qwen2.5-VL for GPUs; greedy decoding",
    ),
}


class PresetError(ValueError):
    pass


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"preset: {name!r} is unknown; allowed: {', '.join(PRESETS)}") from None


BLIP_TYPES = {"instructblip": "instructblip", "blip-2": "blip-2"}


# --- loading ------------------------------------------------------------------------------------

def _quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import huggingface_hub.utils.logging as hub_logging

        hub_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ModelLoadError(f"device: {device!r} is unknown; allowed: auto, cpu, cuda, cuda:N, mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device: {device!r} was asked for but no CUDA GPU is available")
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype not in table:
        raise ModelLoadError(f"dtype: {dtype!r} is unknown; allowed: auto, bf16, fp16, fp32")
    return table[dtype]


def _offline_hint(model: str) -> str:
    size = next((f", {p.weights}" for p in PRESETS.values() if p.model == model and p.weights), "")
    return (f"model {model!r}: weights not found locally and the Hugging Face Hub is unreachable; "
            f"download them where there is network (`hf download {model} --local-dir DIR`{size}) and pass "
            f"--model DIR, or `hf download {model}` into the Hugging Face cache (HF_HOME) of this machine")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so that an offline machine gets the one-line error at once instead of
    minutes of retries."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _from_pretrained(loader, model: str, **kwargs):
    """Load from a local folder, else the local HF cache, else the hub; one-line errors."""
    local = Path(model).expanduser()
    if local.is_dir() or model.startswith((".", "/", "~")):
        if not local.is_dir():
            raise ModelLoadError(f"model folder {model!r} does not exist")
        try:
            return loader(str(local), local_files_only=True, **kwargs)
        except Exception as exc:
            raise ModelLoadError(f"model folder {model!r} cannot be loaded: {one_line(exc)}") from None
    try:
        return loader(model, local_files_only=True, **kwargs)
    except Exception:
        pass  # not cached: try the hub below
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _hub_reachable():
        raise ModelLoadError(_offline_hint(model))
    try:
        return loader(model, **kwargs)
    except Exception as exc:
        text = one_line(exc)
        network = any(k in text.lower() for k in ("connect", "resolve", "offline", "timed out", "network",
                                                    "couldn't", "could not", "max retries", "not found", "404",
                                                    "does not appear", "is not a local folder"))
        raise ModelLoadError(_offline_hint(model) if network else f"model {model!r} cannot be loaded: {text}") from None


@dataclass
class LoadedModel:
    name: str
    model_type: str
    model: Any
    processor: Any
    device: str
    dtype: Any
    extras: dict = field(default_factory=dict)


def load_backend(model: str, *, device: str = "auto", dtype: str = "auto",
                 generation: GenerationSettings | None = None) -> "Backend":
    """The backend for a hub id or local folder (chat VLM, InstructBLIP or BLIP-2)."""
    _quiet_transformers()
    import torch
    import transformers
    from transformers import AutoConfig

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    config = _from_pretrained(AutoConfig.from_pretrained, model)
    model_type = getattr(config, "model_type", "")
    if model_type == "instructblip":
        model_cls, proc_cls = transformers.InstructBlipForConditionalGeneration, transformers.InstructBlipProcessor
    elif model_type == "blip-2":
        model_cls, proc_cls = transformers.Blip2ForConditionalGeneration, transformers.Blip2Processor
    else:
        model_cls, proc_cls = transformers.AutoModelForImageTextToText, transformers.AutoProcessor
    processor = _from_pretrained(proc_cls.from_pretrained, model)
    try:
        net = _from_pretrained(model_cls.from_pretrained, model, dtype=torch_dtype)
    except ModelLoadError:
        raise
    except Exception as exc:  # an architecture AutoModelForImageTextToText does not know
        raise ModelLoadError(f"model {model!r} ({model_type}) is not an image-text-to-text model: {one_line(exc)}") from None
    net.to(device).eval()
    loaded = LoadedModel(model, model_type, net, processor, device, torch_dtype)
    gen = generation or GenerationSettings()
    if model_type in BLIP_TYPES:
        return BlipBackend(loaded, gen)
    return ChatBackend(loaded, gen)


# --- backends -----------------------------------------------------------------------------------

class Backend:
    """Captions a batch: `generate(images, prompts, prefixes)`; prefixes is None (guided route) or
    one string per image that the answer must start with (forced route)."""

    style = "base"

    def __init__(self, loaded: LoadedModel, generation: GenerationSettings):
        self.loaded = loaded
        self.name = loaded.name
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.generation = generation
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        base = copy.deepcopy(self.model.generation_config)
        # Deterministic decoding: drop sampling knobs a model's generation_config may carry.
        for name in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
            if hasattr(base, name):
                setattr(base, name, None)
        if base.pad_token_id is None:
            base.pad_token_id = self.tokenizer.pad_token_id
        self.generation_config = base  # the model's own settings, made deterministic; `generation` goes on top

    def _to_device(self, inputs) -> dict:
        import torch

        out = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                if torch.is_floating_point(value):
                    value = value.to(self.device, dtype=self.dtype)
                else:
                    value = value.to(self.device)
            out[key] = value
        return out

    def _generate(self, inputs: dict, **extra):
        import torch

        config = copy.deepcopy(self.generation_config)
        with torch.inference_mode():
            return self.model.generate(**inputs, generation_config=config, **self.generation.kwargs(), **extra)

    def generate(self, images: list, prompts: list[str], prefixes: list[str] | None = None) -> list[str]:
        raise NotImplementedError


def _strip_prompt(sequences, input_ids):
    """Generated tokens only: decoder-only models return the prompt first."""
    import torch

    if input_ids is not None and sequences.shape[1] >= input_ids.shape[1]:
        if torch.equal(sequences[:, : input_ids.shape[1]].to(input_ids.device), input_ids):
            return sequences[:, input_ids.shape[1]:]
    return sequences


class ChatBackend(Backend):
    """Any chat-template VLM through AutoModelForImageTextToText + AutoProcessor. Left padding;
    the forced prefix is written as the start of the assistant turn."""

    style = "chat"

    def __init__(self, loaded: LoadedModel, generation: GenerationSettings):
        super().__init__(loaded, generation)
        self.tokenizer.padding_side = "left"
        if getattr(self.processor, "chat_template", None) is None and getattr(self.tokenizer, "chat_template", None) is None:
            raise ModelLoadError(f"model {self.name!r} has no chat template; use a chat/instruct model, "
                                 "InstructBLIP or BLIP-2")
        name = type(self.processor).__name__
        # Idefics-family processors (SmolVLM) take one list of images per prompt.
        self._nested_images = any(k in name for k in ("Idefics", "SmolVLM", "Mllama"))

    def chat_text(self, prompt: str, prefix: str | None) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if prefix:
            text = text + (" " if text.endswith(":") else "") + prefix
        return text

    def generate(self, images: list, prompts: list[str], prefixes: list[str] | None = None) -> list[str]:
        prefixes = prefixes or [None] * len(images)
        texts = [self.chat_text(p, pre) for p, pre in zip(prompts, prefixes)]
        image_arg = [[im] for im in images] if self._nested_images else list(images)
        inputs = self.processor(images=image_arg, text=texts, padding=True, return_tensors="pt")
        inputs = self._to_device(inputs)
        sequences = self._generate(inputs)
        new = _strip_prompt(sequences, inputs.get("input_ids"))
        decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [clean_caption(join_prefix(pre, text) if pre else text) for pre, text in zip(prefixes, decoded)]


class BlipBackend(Backend):
    """InstructBLIP and BLIP-2 with plain prompts. With a T5 language model the text is padded on
    the right (the encoder sees [query tokens, text] contiguous) and the forced prefix becomes the
    decoder's first tokens; with a decoder-only LM the text is padded on the left and the prefix is
    appended to the prompt."""

    style = "blip"

    def __init__(self, loaded: LoadedModel, generation: GenerationSettings):
        super().__init__(loaded, generation)
        lm_config = self.model.language_model.config
        self.encoder_decoder = bool(getattr(lm_config, "is_encoder_decoder", False))
        self.tokenizer.padding_side = "right" if self.encoder_decoder else "left"
        self.decoder_start = getattr(lm_config, "decoder_start_token_id", None)
        if self.decoder_start is None:
            self.decoder_start = self.tokenizer.pad_token_id
        self.question_answer = loaded.model_type == "blip-2"

    def plain_text(self, prompt: str) -> str:
        return f"Question: {prompt} Answer:" if self.question_answer else prompt

    def generate(self, images: list, prompts: list[str], prefixes: list[str] | None = None) -> list[str]:
        texts = [self.plain_text(p) for p in prompts]
        if not prefixes:
            return self._run(images, texts, None)
        if not self.encoder_decoder:
            texts = [f"{t} {pre}" for t, pre in zip(texts, prefixes)]
            outs = self._run(images, texts, None)
            return [clean_caption(join_prefix(pre, o)) for pre, o in zip(prefixes, outs)]
        # T5: the prefix goes to the decoder; group by prefix length so that no decoder padding is needed.
        ids = [self.tokenizer(pre, add_special_tokens=False)["input_ids"] for pre in prefixes]
        results: list[str | None] = [None] * len(images)
        groups: dict[int, list[int]] = {}
        for i, seq in enumerate(ids):
            groups.setdefault(len(seq), []).append(i)
        for members in groups.values():
            outs = self._run([images[i] for i in members], [texts[i] for i in members], [ids[i] for i in members])
            for i, out in zip(members, outs):
                results[i] = out
        return [r or "" for r in results]

    def _run(self, images: list, texts: list[str], decoder_prefix: list[list[int]] | None) -> list[str]:
        import torch

        inputs = self.processor(images=list(images), text=texts, padding=True, return_tensors="pt")
        inputs = self._to_device(inputs)
        extra = {}
        if decoder_prefix is not None:
            rows = [[self.decoder_start] + seq for seq in decoder_prefix]
            extra["decoder_input_ids"] = torch.tensor(rows, dtype=torch.long, device=self.device)
        sequences = self._generate(inputs, **extra)
        if not self.encoder_decoder:
            sequences = _strip_prompt(sequences, inputs.get("input_ids"))
        return [clean_caption(t) for t in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)]


def describe(backend: Backend) -> str:
    return f"{backend.name} ({backend.loaded.model_type}, {backend.style}, {backend.device}, {str(backend.dtype).replace('torch.', '')})"


__all__ = ["PRESETS", "Preset", "GenerationSettings", "get_preset", "load_backend", "Backend", "ChatBackend",
           "BlipBackend", "ModelLoadError", "PresetError", "describe"]
