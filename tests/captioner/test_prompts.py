"""Category-guided prompts and the consistency check (pure Python, milliseconds)."""
from __future__ import annotations

import pytest

from blender_addon.contract.categories import category_forms, names_category, readable
from captioner.prompts import (PAPER_PROMPT, PromptError, check_template, clean_caption, forced_prefix, join_prefix,
                               render_prompt)


def test_readable_forms():
    assert readable("rocking_chair") == "rocking chair"
    assert readable("  teddy__bear ") == "teddy bear"
    assert readable("airliner") == "airliner"
    assert readable("T-shirt") == "T-shirt"


def test_paper_prompt_is_the_papers():
    assert render_prompt(PAPER_PROMPT, "rocking_chair") == (
        "Write a short description for the image, noting that the main instance of the image is a rocking chair.")


@pytest.mark.parametrize("caption", [
    "A wooden rocking chair on a porch.",
    "Two ROCKING CHAIRS facing each other",
    "a rocking_chair, rendered",
    "The rocking-chair is red.",
    "rocking chair",
])
def test_names_category_accepts(caption):
    assert names_category(caption, "rocking_chair")


@pytest.mark.parametrize("caption", [
    "A wooden chair on a porch.",
    "a rocking horse",
    "rockingchairs",
    "",
    None,
])
def test_names_category_rejects(caption):
    assert not names_category(caption, "rocking_chair")


@pytest.mark.parametrize("category,caption", [
    ("airliner", "three airliners on the tarmac"),
    ("box", "a pile of boxes"),
    ("butterfly", "two butterflies"),
    ("knife", "kitchen knives"),
    ("bus", "a yellow school buses"),
    ("mug", "a mug of coffee"),
])
def test_plurals(category, caption):
    assert names_category(caption, category)


def test_whole_words_only():
    assert not names_category("a smugglers boat", "mug")
    assert not names_category("airlinerss", "airliner")
    assert "mugs" in category_forms("mug")


def test_forced_prefix_names_the_category():
    prefix = forced_prefix("rocking_chair")
    assert prefix == "The rocking chair in the image"
    assert names_category(prefix, "rocking_chair")


def test_join_prefix_spacing():
    assert join_prefix("The mug in the image", "is red.") == "The mug in the image is red."
    assert join_prefix("The mug in the image", " is red.") == "The mug in the image is red."
    assert join_prefix("The mug in the image", ", red") == "The mug in the image, red"
    assert join_prefix("The mug in the image", "") == "The mug in the image"


def test_clean_caption():
    assert clean_caption("  a\nred\x08 mug \t ") == "a red mug"


def test_template_check():
    assert check_template("Describe the {category}.")
    with pytest.raises(PromptError, match="must contain"):
        check_template("Describe the object.")
    with pytest.raises(PromptError, match="only"):
        check_template("Describe the {category} in {style}.")
