"""Messages in the panel's words: a spec error names `camera.elevation_min_deg`, the artist sees
"Cameras > Elevation Min" (the panel and the field's label). Pure Python, no bpy."""
import re

from .fields import BY_PATH

# The panel each spec section is edited in.
PANEL_TITLES = {"camera": "Cameras", "lighting": "Lighting", "background": "Background",
                "normalize": "Asset", "render": "Render", "": "Spec"}
_PATH = re.compile(r"\b(camera|lighting|background|normalize|render)\.([a-z_]+)((?:\[\d+\])*)")
_TOP = re.compile(r"^(seed|name|description|reproduces|version)\b")
_INDEX = re.compile(r"\[(\d+)\]")
_SNAKE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def field_label(path):
    """'Cameras > Elevation Min' for 'camera.elevation_min_deg'; the path itself if unknown."""
    fld = BY_PATH.get(path)
    if fld is None:
        return path
    group = f"{fld.hints['group']} > " if "group" in fld.hints else ""
    return f"{PANEL_TITLES[fld.section]} > {group}{fld.label}"


def _indices(suffix):
    return "".join(f" #{int(i) + 1}" for i in _INDEX.findall(suffix))


def panel_message(message):
    """The message with every spec field path replaced by its panel label."""
    message = str(message)
    first = _PATH.search(message)
    message = _PATH.sub(lambda m: field_label(f"{m.group(1)}.{m.group(2)}") + _indices(m.group(3)), message)
    message = _TOP.sub(lambda m: field_label(m.group(1)), message)
    if first is not None:  # a bare sibling field ("above elevation_max_deg 80") is in the same section
        section = first.group(1)
        message = _SNAKE.sub(lambda m: BY_PATH[f"{section}.{m.group(0)}"].label.lower()
                             if f"{section}.{m.group(0)}" in BY_PATH else m.group(0), message)
    return message
