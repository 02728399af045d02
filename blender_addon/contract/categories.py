"""Category names, and the rule for a caption that names its category.

A category is stored as an identifier (`rocking_chair`); prompts, forced prefixes and the dataset
card carry its readable form ("rocking chair"). A caption names its category when it holds the
category, its readable form or a plural of either, case-insensitively, as whole words. The
captioner's consistency check and `farm dataset validate` both use `names_category`.
"""
from __future__ import annotations

import functools
import re

# Whitespace, '_' and '-' between words are interchangeable in captions.
_WORD_GAP = r"[\s_\-]+"


def readable(category: str) -> str:
    """`rocking_chair` -> "rocking chair"; `T-shirt` stays; runs of separators become one space."""
    return re.sub(r"[_\s]+", " ", str(category)).strip()


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
    return _WORD_GAP.join(re.escape(w) for w in re.split(_WORD_GAP, form) if w)


@functools.lru_cache(maxsize=4096)
def category_pattern(category: str) -> re.Pattern | None:
    """One compiled pattern per category: any accepted form as whole words, case-insensitively.
    None for an empty category (no caption names it)."""
    if not str(category).strip():
        return None
    forms = "|".join(_form_pattern(form) for form in category_forms(category))
    return re.compile(r"(?<![0-9A-Za-z])(?:" + forms + r")(?![0-9A-Za-z])", re.IGNORECASE)


def names_category(caption: str | None, category: str) -> bool:
    """True when the caption names the category (or a plural or readable form), as whole words."""
    if not caption:
        return False
    pattern = category_pattern(category)
    return pattern is not None and pattern.search(caption) is not None
