"""Category-guided prompts and the category-consistency check.

A category is stored as an identifier (`rocking_chair`); prompts and forced prefixes carry its
readable form ("rocking chair"). A caption is consistent when it names the category, its readable
form or a plural of either, case-insensitively, as whole words.
"""
from __future__ import annotations

import re

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


def readable(category: str) -> str:
    """`rocking_chair` -> "rocking chair"; `T-shirt` stays; runs of separators become one space."""
    text = re.sub(r"[_\s]+", " ", str(category)).strip()
    return text


def _plural(word: str) -> str:
    lower = word.lower()
    if re.search(r"(s|x|z|ch|sh)$", lower):
        return word + "es"
    if re.search(r"[^aeiou]y$", lower):
        return word[:-1] + "ies"
    if lower.endswith("fe"):
        return word[:-2] + "ves"
    if lower.endswith("f") and not lower.endswith("ff"):
        return word[:-1] + "ves"
    return word + "s"


def category_forms(category: str) -> list[str]:
    """Every accepted spelling: raw, readable, and their plurals (plural of the last word,
    plus a plain "+s" form, so that "chiefs" and "chieves" both pass)."""
    raw = str(category).strip()
    forms: list[str] = []
    for base in (raw, readable(raw), raw.replace("_", "-")):
        if not base:
            continue
        head, _, last = base.rpartition(" ") if " " in base else ("", "", base)
        prefix = head + " " if head else ""
        for form in (base, prefix + _plural(last), base + "s", base + "es"):
            if form.lower() not in (f.lower() for f in forms):
                forms.append(form)
    return forms


def _form_pattern(form: str) -> str:
    # Whitespace, '_' and '-' between words are interchangeable in captions.
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", form) if w]
    return r"[\s_\-]+".join(words)


def names_category(caption: str | None, category: str) -> bool:
    """True when the caption names the category (or a plural or readable form), as whole words."""
    if not caption or not str(category).strip():
        return False
    for form in category_forms(category):
        pattern = r"(?<![0-9A-Za-z])" + _form_pattern(form) + r"(?![0-9A-Za-z])"
        if re.search(pattern, caption, flags=re.IGNORECASE):
            return True
    return False


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
