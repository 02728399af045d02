"""Scene properties: one PropertyGroup per ViewSpec section, generated from fields.FIELDS,
plus the add-on's own state (asset, preview view, farm job). Stored on bpy.types.Scene.mvcap.
"""
import math

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import fields as F


def _bounds(fld, scale=None):
    """min/max hints, scaled to the property's storage unit (radians for angles)."""
    return {key: fld.hints[key] * scale if scale else fld.hints[key]
            for key in ("min", "max", "soft_min", "soft_max") if key in fld.hints}


def make_property(fld):
    """The bpy property for one spec field, with units on angles and lengths."""
    k, d = fld.kind, fld.default
    common = dict(name=fld.label, description=fld.tip)
    if k == "enum":
        items = [(v, lab, tip) for v, (lab, tip) in F.ENUMS[fld.path].items()]
        return EnumProperty(items=items, default=d, **common)
    if k == "angle":
        return FloatProperty(default=math.radians(d), subtype="ANGLE", unit="ROTATION", step=100,
                             precision=1, **_bounds(fld, math.pi / 180), **common)
    if k == "length":
        return FloatProperty(default=d, subtype="DISTANCE", unit="LENGTH", precision=3, **_bounds(fld), **common)
    if k == "lens":  # Blender's camera unit: shown in mm
        return FloatProperty(default=d, subtype="DISTANCE_CAMERA", unit="CAMERA", precision=1, **_bounds(fld), **common)
    if k == "factor":
        return FloatProperty(default=d, subtype="FACTOR", precision=2, **_bounds(fld), **common)
    if k == "seconds":
        common["name"] = fld.label + " (s)"
        return FloatProperty(default=d, precision=0, **_bounds(fld), **common)
    if k == "float":
        return FloatProperty(default=d, precision=3, **_bounds(fld), **common)
    if k == "pixels":
        return IntProperty(default=d, subtype="PIXEL", **_bounds(fld), **common)
    if k == "int":
        return IntProperty(default=d, **_bounds(fld), **common)
    if k == "bool":
        return BoolProperty(default=d, **common)
    if k == "color":
        return FloatVectorProperty(default=tuple(d), size=3, subtype="COLOR", min=0.0, soft_max=1.0, **common)
    if k == "path":
        return StringProperty(default=d, subtype="FILE_PATH", **common)
    if k in ("floats", "rows", "names"):
        return StringProperty(default=F.to_prop(fld, d), **common)
    return StringProperty(default=d, **common)


def _section_class(section):
    name = "MVCAP_PG_" + section
    annotations = {fld.name: make_property(fld) for fld in F.FIELDS[section]}
    return type(name, (bpy.types.PropertyGroup,), {"__annotations__": annotations, "__module__": __name__})


SECTION_CLASSES = {section: _section_class(section) for section in F.SECTIONS}


def _on_view_index(self, context):
    from . import preview  # late: preview imports rig modules that need numpy

    preview.on_view_index(self, context)


_settings_annotations = {fld.name: make_property(fld) for fld in F.FIELDS[""]}
_settings_annotations.update({section: PointerProperty(type=cls) for section, cls in SECTION_CLASSES.items()})
_settings_annotations.update(
    # asset and preview state
    asset_path=StringProperty(name="Asset", subtype="FILE_PATH", description="The imported asset file"),
    asset_uid=StringProperty(name="UID", description="The asset's uid (file stem); seeds the random views"),
    normalized=BoolProperty(name="Normalized", description="The asset has been normalised"),
    norm_radius=FloatProperty(name="Radius", description="Bounding-sphere radius after normalisation"),
    norm_scale=FloatProperty(name="Scale", description="Scale applied by normalisation"),
    view_index=IntProperty(name="View", min=0, default=0, update=_on_view_index,
                           description="Move the rig camera to this view"),
    view_message=StringProperty(name="View Message", description="Why the rig cannot show the view"),
    render_folder=StringProperty(name="Folder", subtype="DIR_PATH", default="//mvcap_views/",
                                 description="Render All Views writes <folder>/<uid>/000.png ... here"),
    render_all_done=IntProperty(name="Views Rendered", min=0),
    render_all_progress=FloatProperty(name="Progress", subtype="PERCENTAGE", min=0, max=100, precision=0),
    render_all_total=IntProperty(name="Views", min=0),
    render_all_running=BoolProperty(name="Rendering", description="Render All Views is running"),
    preset=StringProperty(name="Preset", description="The preset the settings came from"),
    exact_json=StringProperty(name="Exact Spec", options={"HIDDEN"},
                              description="The last applied spec at full precision (floats are stored as float32)"),
    # farm
    farm_address=StringProperty(name="Farm", default="tcp://127.0.0.1:5555",
                                description="Address of the farm broker (farm broker --bind)"),
    farm_output=StringProperty(name="Output", subtype="DIR_PATH", default="//mvcap_out/",
                               description="Dataset folder the farm writes to"),
    farm_keys=StringProperty(name="Keys", subtype="DIR_PATH",
                             description="CurveZMQ key folder (`farm keys DIR`) for a farm on another machine; "
                                         "empty: a farm on this machine, reached with its local token"),
    farm_key_name=StringProperty(name="Key Name", default="client",
                                 description="Which key pair in the key folder is this Blender's"),
    farm_source=EnumProperty(name="Submit", items=[
        ("ASSET", "Current Asset", "Submit the imported asset"),
        ("FOLDER", "Folder", "Submit every asset in a folder"),
    ], default="ASSET", description="What to submit"),
    farm_caption=BoolProperty(name="Caption", default=False,
                              description="Queue captions too (a captioner must be connected to the farm)"),
    farm_folder=StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of assets to submit"),
    job_id=StringProperty(name="Job", description="The last submitted job"),
    job_state=StringProperty(name="State", description="The job's state on the farm"),
    job_done=IntProperty(name="Done", min=0),
    job_failed=IntProperty(name="Failed", min=0),
    job_total=IntProperty(name="Objects", min=0),
    job_views_done=IntProperty(name="Views Done", min=0),
    job_views_total=IntProperty(name="Views", min=0),
    job_progress=FloatProperty(name="Progress", subtype="PERCENTAGE", min=0, max=100, precision=0),
    job_message=StringProperty(name="Message"),
)

MVCAP_PG_settings = type("MVCAP_PG_settings", (bpy.types.PropertyGroup,),
                         {"__annotations__": _settings_annotations, "__module__": __name__})

CLASSES = (*SECTION_CLASSES.values(), MVCAP_PG_settings)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.mvcap = PointerProperty(type=MVCAP_PG_settings, name="MVCap Studio")


def unregister():
    del bpy.types.Scene.mvcap
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
