"""Category-guided prompts: templates, the forced-prefix route, and caption clean-up.

A category is stored as an identifier (`rocking_chair`); prompts and forced prefixes carry its
readable form ("rocking chair"). The consistency rule (does a caption name its category) is
blender_addon.contract.categories.names_category, shared with `farm dataset validate`.
"""
from __future__ import annotations

import re

from blender_addon.contract.categories import readable

# The prompt of the paper (Omniview-Tuning, MVCap-4M), used with InstructBLIP FlanT5-XL.
PAPER_PROMPT = "Write a short description for the image, noting that the main instance of the image is a {category}."
# For chat models: the same instruction, asking for one sentence so that max_new_tokens is enough.
CHAT_PROMPT = (
    "Write a short description for the image in one sentence, noting that the main instance "
    "of the image is a {category}."
)

ROUTE_GUIDED = "guided"
ROUTE_FORCED = "forced_prefix"


class PromptError(ValueError):
    """A prompt template that cannot be used (one-line message)."""


def check_template(template: str) -> str:
    """A prompt template must mention {category} and nothing else in braces."""
    if "{category}" not in template:
        raise PromptError("prompt: the template must contain {category}")
    try:
        template.format(category="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise PromptError(f"prompt: bad template ({exc}); only {{category}} may appear in braces") from None
    return template


def render_prompt(template: str, category: str) -> str:
    return template.format(category=readable(category))


def forced_prefix(category: str) -> str:
    """The start of the answer on the forced route: "The rocking chair in the image"."""
    return f"The {readable(category)} in the image"


def join_prefix(prefix: str, continuation: str) -> str:
    """Prefix plus a decoded continuation, with one space between words and none before punctuation."""
    continuation = continuation.rstrip()
    if not continuation:
        return prefix
    if continuation[0].isspace() or continuation[0] in ",.;:!?'\")":
        return prefix + continuation
    return prefix + " " + continuation


def clean_caption(text: str) -> str:
    """One line, single spaces, no control characters, no leading/trailing blanks."""
    return re.sub(r"[\s\x00-\x1f\x7f]+", " ", text).strip()
