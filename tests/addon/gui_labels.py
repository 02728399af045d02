"""How much room the MVCap sidebar's labels have, for gui_driver.py: every label a panel draws
(over the patterns, distance modes and lighting presets) measured with the UI font against the
label column of the sidebar at its default width."""
import bpy

from gui_screen import view3d


class LabelRecorder:
    """A stand-in for a panel's layout that keeps the labels of property-split rows: a field's in
    the label column, a checkbox's beside it in the value column. Their drawn width is measured
    with the UI font."""

    def __init__(self, labels, split=False):
        self.labels, self.use_property_split, self.use_property_decorate = labels, split, False
        self.alignment, self.active, self.enabled = "EXPAND", True, True

    def _child(self, *args, **kwargs):
        return LabelRecorder(self.labels, self.use_property_split)

    row = column = box = split = _child

    def prop(self, data, name, text=None, **kwargs):
        if self.use_property_split and text != "" and not kwargs.get("expand"):
            rna = data.bl_rna.properties[name]
            self.labels.add((rna.type == "BOOLEAN", text if text is not None else rna.name))

    def operator(self, *args, **kwargs):
        return type("Props", (), {})()

    def menu(self, *args, **kwargs):
        pass

    label = progress = menu


def truncated_labels(s, report):
    """Labels wider than the label column of the sidebar at its default width, over every
    pattern, distance mode and lighting preset."""
    import blf
    from types import SimpleNamespace

    import mvcap_studio.ui.panels as panels

    labels = set()
    for pattern in ("ring", "hemisphere_random", "explicit"):
        for mode in ("fixed", "range", "auto"):
            for preset in ("area_top", "hdri"):
                s.camera.pattern, s.camera.distance_mode, s.lighting.preset = pattern, mode, preset
                for cls in panels.CLASSES:
                    cls.draw(SimpleNamespace(layout=LabelRecorder(labels)), bpy.context)
    _, _, regions = view3d()
    scale = bpy.context.preferences.system.ui_scale
    blf.size(0, 11 * scale, 72)  # the theme's widget label style
    # a property split: 40% of the panel's width (inside its margins and the tab strip) for labels,
    # 60% for values, less the text's padding; a checkbox's text follows the box. (Measured on
    # 3.4 at the default 229 px: "Reproduces", 64 px, shows whole; "Resolution X", 67 px, does not.)
    inside = regions["UI"].width - 50 * scale
    room = {False: 0.4 * inside - 6 * scale, True: 0.6 * inside - 28 * scale}
    widths = {label: round(blf.dimensions(0, label)[0], 1) for _, label in labels}
    report["label_room"], report["label_widths"] = room, widths
    return sorted(label for is_check, label in labels if widths[label] > room[is_check])
