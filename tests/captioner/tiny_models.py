"""Randomly initialised models of real architectures, built offline from configs.

No weights can be downloaded in tests or CI, so tests and the CPU benchmark build a LLaVA, an
InstructBLIP (FlanT5-style), a BLIP-2 (OPT-style) or a SmolVLM (Idefics3) of any size from a
config, with a small byte-level BPE tokenizer trained on the spot, and save model + processor
with save_pretrained.
The captioner then loads the folder through its real loading code (`--model FOLDER`).
"""
from __future__ import annotations

from pathlib import Path

_WORDS = (
    "the a an in of image is on with and this that it its there shows showing picture photo render view "
    "object small large red blue green white black wooden metal plastic gray grey chair chairs rocking "
    "airliner airliners mug mugs teapot lamp table car truck boat plane bird dog cat toy model "
    "write short description for noting main instance user assistant question answer"
).split()

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tokenizer(vocab_size: int = 512, extra_text: list[str] | None = None):
    """A byte-level BPE tokenizer (any text round-trips) with <pad> <s> </s> <image>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [" ".join(_WORDS)] * 20 + list(extra_text or []) + [
        "The rocking chair in the image is a wooden chair.",
        "Write a short description for the image, noting that the main instance of the image is a rocking chair.",
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<image>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token=None)


def build_llava(folder: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2, vision_hidden: int = 32,
                vision_layers: int = 1, image_size: int = 32, patch_size: int = 8, vocab_size: int = 512,
                intermediate: int | None = None, vision_intermediate: int | None = None, seed: int = 0,
                init_range: float = 0.02, kv_heads: int | None = None, vision_heads: int | None = None,
                model_vocab: int | None = None) -> Path:
    """A randomly initialised LlavaForConditionalGeneration (CLIP vision tower + Llama) and its
    LlavaProcessor (CLIP image processor, BPE tokenizer, chat template), saved to `folder`.
    `model_vocab` sizes the embeddings and LM head like a real model's vocabulary (ids past the
    small tokenizer decode to nothing)."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    folder = Path(folder)
    tok = build_tokenizer(vocab_size)
    vision = CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=vision_intermediate or 2 * vision_hidden,
                              num_hidden_layers=vision_layers, num_attention_heads=vision_heads or heads,
                              image_size=image_size,
                              patch_size=patch_size, projection_dim=vision_hidden)
    text = LlamaConfig(vocab_size=max(len(tok), model_vocab or 0), hidden_size=hidden,
                       intermediate_size=intermediate or 2 * hidden, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv_heads or heads,
                       max_position_embeddings=max(256, (image_size // patch_size) ** 2 + 192),
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       initializer_range=init_range)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         image_seq_length=(image_size // patch_size) ** 2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_instructblip(folder: str | Path, *, hidden: int = 32, layers: int = 1, heads: int = 2,
                       image_size: int = 32, patch_size: int = 8, query_tokens: int = 4, vocab_size: int = 512,
                       seed: int = 0, init_factor: float = 1.0) -> Path:
    """A randomly initialised InstructBlipForConditionalGeneration with a T5 (FlanT5-style)
    language model, like Salesforce/instructblip-flan-t5-xl, and its InstructBlipProcessor."""
    import torch
    from transformers import (BlipImageProcessor, InstructBlipConfig, InstructBlipForConditionalGeneration,
                              InstructBlipProcessor, InstructBlipQFormerConfig, InstructBlipVisionConfig, T5Config)

    folder = Path(folder)
    tok = build_tokenizer(vocab_size)
    qtok = build_tokenizer(vocab_size)
    vision = InstructBlipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                      num_attention_heads=heads, image_size=image_size, patch_size=patch_size)
    qformer = InstructBlipQFormerConfig(vocab_size=len(qtok), hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=heads, intermediate_size=2 * hidden,
                                        encoder_hidden_size=hidden, max_position_embeddings=256,
                                        pad_token_id=qtok.pad_token_id)
    # +1: the processor adds <image> when the tokenizer lacks it (ours has it; keep room anyway).
    text = T5Config(vocab_size=len(tok) + 1, d_model=hidden, d_kv=hidden // heads, d_ff=2 * hidden,
                    num_layers=layers, num_decoder_layers=layers, num_heads=heads, pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                    decoder_start_token_id=tok.pad_token_id, initializer_factor=init_factor,
                    feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    config = InstructBlipConfig(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                                text_config=text.to_dict(), num_query_tokens=query_tokens,
                                image_token_index=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    model = InstructBlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    processor = InstructBlipProcessor(image_processor=image_processor, tokenizer=tok, qformer_tokenizer=qtok,
                                      num_query_tokens=query_tokens)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def count_parameters(folder: str | Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in Path(folder).glob("*.safetensors"):
        with safe_open(str(path), "pt") as fh:
            for key in fh.keys():
                total += _prod(fh.get_slice(key).get_shape())
    return total


def _prod(shape) -> int:
    out = 1
    for dim in shape:
        out *= int(dim)
    return out


def build_blip2(folder: str | Path, *, hidden: int = 32, layers: int = 1, heads: int = 2, image_size: int = 32,
                patch_size: int = 8, query_tokens: int = 4, vocab_size: int = 512, seed: int = 0,
                init_std: float = 0.02) -> Path:
    """A randomly initialised Blip2ForConditionalGeneration with a decoder-only OPT language model
    (like Salesforce/blip2-opt-2.7b) and its Blip2Processor."""
    import torch
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig,
                              Blip2VisionConfig, BlipImageProcessor, OPTConfig)

    folder = Path(folder)
    tok = build_tokenizer(vocab_size)
    vision = Blip2VisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, image_size=image_size, patch_size=patch_size)
    qformer = Blip2QFormerConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, intermediate_size=2 * hidden, encoder_hidden_size=hidden,
                                 max_position_embeddings=256)
    text = OPTConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
                     ffn_dim=2 * hidden, word_embed_proj_dim=hidden, max_position_embeddings=256,
                     pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     init_std=init_std)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
                         num_query_tokens=query_tokens, image_token_index=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
                               tokenizer=tok, num_query_tokens=query_tokens)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# SmolVLM's chat template (HuggingFaceTB/SmolVLM-256M-Instruct): the generation prompt ends with
# "Assistant:", the image is a bare <image> that the Idefics3Processor expands.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_smolvlm(folder: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2, vision_hidden: int = 32,
                  vision_layers: int = 1, image_size: int = 32, patch_size: int = 8, scale_factor: int = 2,
                  split_factor: int = 2, vocab_size: int = 512, seed: int = 0, init_range: float = 0.02) -> Path:
    """A randomly initialised Idefics3ForConditionalGeneration (the architecture of
    HuggingFaceTB/SmolVLM-256M-Instruct: SigLIP-style vision tower, pixel-shuffle connector, Llama)
    and its Idefics3Processor (Idefics3 image processor with image splitting into up to
    `split_factor` x `split_factor` tiles plus a global image, a BPE tokenizer with SmolVLM's
    special tokens, SmolVLM's chat template), saved to `folder`."""
    import torch
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                              Idefics3VisionConfig, LlamaConfig)
    try:
        from transformers import Idefics3ImageProcessorPil as ImageProcessor  # no torchvision needed
    except ImportError:  # pragma: no cover - older transformers
        from transformers import Idefics3ImageProcessor as ImageProcessor

    folder = Path(folder)
    tok = build_tokenizer(vocab_size)
    row_col = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<fake_token_around_image>", "<image>",
                                                          "<end_of_utterance>", "<global-img>", *row_col]})
    tok.eos_token = "<end_of_utterance>"  # as in SmolVLM: a turn ends with <end_of_utterance>
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor ** 2
    vision = Idefics3VisionConfig(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                                  num_hidden_layers=vision_layers, num_attention_heads=heads, image_size=image_size,
                                  patch_size=patch_size, initializer_range=init_range)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=max(512, (split_factor ** 2 + 1) * (image_seq_len + 3) + 256),
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
                       eos_token_id=tok.eos_token_id, initializer_range=init_range)
    config = Idefics3Config(vision_config=vision.to_dict(), text_config=text.to_dict(), scale_factor=scale_factor,
                            image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    image_processor = ImageProcessor(size={"longest_edge": split_factor * image_size},
                                     max_image_size={"longest_edge": image_size}, do_image_splitting=split_factor > 1)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=image_seq_len,
                                  chat_template=SMOLVLM_CHAT_TEMPLATE)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
