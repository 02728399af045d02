"""User-facing errors are one line (rig/errors.py)."""
from blender_addon.rig.errors import one_line


def test_one_line_takes_the_first_line_and_shortens():
    assert one_line(ValueError("\n  first line \nsecond")) == "first line"
    assert one_line(KeyError()) == "KeyError"
    assert one_line("") == ""
    assert one_line("x" * 50, limit=10) == "xxxxxxx..."
