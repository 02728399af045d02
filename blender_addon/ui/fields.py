"""The one mapping between ViewSpec and the scene's properties, generated from the dataclasses.

Pure Python (no bpy): `FIELDS` describes every spec field (kind, label, range, enum items);
`to_prop`/`to_spec` convert values; props.py turns FIELDS into bpy properties.
Flow: props -> spec dict (`to_spec`) -> spec_from_dict, and spec -> props (`to_prop`).
"""
import dataclasses
import json
import math
import struct

from ..rig import spec as S

SECTIONS = ("camera", "lighting", "background", "normalize", "render")
TOP_FIELDS = ("name", "description", "reproduces", "seed")  # "version" is fixed, shown as a label

# Enum choices per field: value -> (label, tooltip)
ENUMS = {
    "camera.pattern": {
        "ring": ("Ring", "Even azimuths at each listed elevation"),
        "hemisphere_random": ("Hemisphere", "Random viewpoints in the elevation band (MVCap)"),
        "sphere_random": ("Sphere", "Random viewpoints over the whole sphere"),
        "fibonacci": ("Fibonacci", "Evenly spread viewpoints in the elevation band"),
        "hammersley": ("Hammersley", "Low-discrepancy viewpoints in the elevation band"),
        "explicit": ("Explicit", "A list of azimuth, elevation, distance rows"),
        "cube_normalized_random": ("Cube-Normalised", "Normalised uniform-cube directions (zero123, objaverse-xl)"),
        "ring_random_elevation": ("Ring, Random Elevation", "Ring azimuths, random elevation in the band (SyncDreamer input views)"),
        "trellis_hammersley": ("TRELLIS Hammersley", "Hammersley with 75% of views above the horizon (TRELLIS)"),
    },
    "camera.distance_mode": {
        "fixed": ("Fixed", "Every camera at the same distance"),
        "range": ("Range", "A random distance between min and max per view"),
        "auto": ("Auto-Fit", "Distance that makes the object fill part of the frame"),
    },
    "lighting.preset": {
        "area_top": ("Area Top", "One large area light above the object (objaverse-rendering)"),
        "three_point": ("Three Point", "Key, fill and rim lights"),
        "sun_rig_random": ("Random Suns", "Randomly placed sun lights"),
        "uniform": ("Uniform", "Flat world lighting only"),
        "random_area": ("Random Area", "Randomly placed area lights"),
        "hdri": ("HDRI", "An environment map"),
        "camera_headlight": ("Headlight", "A light that follows the camera"),
        "trellis": ("TRELLIS", "TRELLIS's point and 25 m area lights"),
    },
    "lighting.randomize": {
        "none": ("None", "Same lights for every object and view"),
        "object": ("Per Object", "New random lights per object"),
        "view": ("Per View", "New random lights per view"),
    },
    "normalize.mode": {
        "unit_box": ("Unit Box", "Largest bounding-box side becomes 1, centred"),
        "unit_sphere": ("Unit Sphere", "Bounding sphere radius becomes 1, centred"),
        "none": ("None", "Keep the asset's own size and position"),
    },
    "render.engine": {
        "cycles": ("Cycles", "Path tracing; works headless on CPU"),
        "eevee": ("EEVEE", "Rasteriser; fast on GPU"),
    },
    "render.file_format": {"PNG": ("PNG", "RGBA PNG"), "JPEG": ("JPEG", "RGB JPEG")},
    "render.view_transform": {
        "Standard": ("Standard", "Colours as authored (sRGB)"),
        "Filmic": ("Filmic", "Filmic tone mapping (Blender 2.8-3.x default)"),
        "AgX": ("AgX", "AgX tone mapping (Blender 4.0+ default; Filmic where absent)"),
    },
    "render.look": {name: (name, f"{name} look of the view transform") for name in S.LOOKS},
    "render.filter_type": {
        "blackman_harris": ("Blackman-Harris", "Blender's default pixel filter"),
        "gaussian": ("Gaussian", "Gaussian pixel filter"),
        "box": ("Box", "Box pixel filter (TRELLIS)"),
    },
    "render.denoiser": {
        "oidn": ("OpenImageDenoise", "Intel OIDN, on the CPU"),
        "optix": ("OptiX", "NVIDIA OptiX (needs an NVIDIA GPU; OIDN where absent)"),
    },
    "render.denoise_prefilter": {
        "accurate": ("Accurate", "Denoise the albedo and normal passes first"),
        "fast": ("Fast", "Use the passes as they are"),
        "none": ("None", "No prefilter"),
    },
    "render.denoise_quality": {
        "high": ("High", "Best denoise quality"),
        "balanced": ("Balanced", "Faster denoise (Blender 4.1+)"),
        "fast": ("Fast", "Fastest denoise (Blender 4.1+)"),
    },
    "render.denoise_input_passes": {
        "rgb": ("Color", "Denoise from the image only"),
        "rgb_albedo": ("Color + Albedo", "Denoise with the albedo pass"),
        "rgb_albedo_normal": ("Color + Albedo + Normal", "Denoise with the albedo and normal passes"),
    },
}
# The spec's own allowed values must match the UI's, or an enum could hide a value.
assert set(ENUMS["camera.pattern"]) == set(S.PATTERNS)
assert set(ENUMS["camera.distance_mode"]) == set(S.DISTANCE_MODES)
assert set(ENUMS["lighting.preset"]) == set(S.LIGHTING_PRESETS)
assert set(ENUMS["lighting.randomize"]) == set(S.RANDOMIZE_SCOPES)
assert set(ENUMS["normalize.mode"]) == set(S.NORMALIZE_MODES)
assert set(ENUMS["render.engine"]) == set(S.ENGINES)
assert set(ENUMS["render.file_format"]) == set(S.FILE_FORMATS)
assert set(ENUMS["render.view_transform"]) == set(S.VIEW_TRANSFORMS)
assert set(ENUMS["render.filter_type"]) == set(S.FILTER_TYPES)
assert set(ENUMS["render.denoiser"]) == set(S.DENOISERS)
assert set(ENUMS["render.denoise_prefilter"]) == set(S.DENOISE_PREFILTERS)
assert set(ENUMS["render.denoise_quality"]) == set(S.DENOISE_QUALITIES)
assert set(ENUMS["render.denoise_input_passes"]) == set(S.DENOISE_INPUT_PASSES)

# A property needs a number for "more than 0": the least positive value a property holds. A spec
# value outside a property's range is refused when loaded (check_ranges), never clamped.
OPEN_MIN = 1e-6
BOUNCE_LABELS = {"max_bounces": "Total", "transmission_bounces": "Refraction", "transparent_max_bounces": "Alpha"}  # fit the sidebar
# Per-field UI hints; anything not named here is derived from the annotation and name.
HINTS = {
    "seed": dict(label="Seed", min=0, tip="Seed for every random choice (with the asset uid)"),
    "name": dict(label="Name", tip="Spec name, saved with the JSON"),
    "description": dict(label="Description", tip="What this spec is for"),
    "reproduces": dict(label="Reproduces", tip="Paper or pipeline this spec reproduces"),
    "camera.num_views": dict(label="Views", min=1, max=100000, soft_max=200, tip="Views per object (per elevation for a ring)"),
    "camera.elevations_deg": dict(label="Rings (°)", tip="Ring elevations in degrees, comma separated"),
    "camera.azimuth_offset_deg": dict(label="Azimuth", soft_min=-360, soft_max=360, tip="Azimuth offset added to every view (a ring's first view is here)"),
    "camera.elevation_min_deg": dict(label="Elevation Min", min=-90, max=90, tip="Lowest camera elevation"),
    "camera.elevation_max_deg": dict(label="Elevation Max", min=-90, max=90, tip="Highest camera elevation"),
    "camera.explicit": dict(label="View List", tip="'azimuth° elevation° distance' rows separated by ';' (distance 0: use the distance mode)"),
    "camera.distance_mode": dict(label="Distance"),
    "camera.distance": dict(kind="length", open_min=True, label="Distance", min=OPEN_MIN, soft_max=20, tip="Camera distance from the object centre"),
    "camera.distance_min": dict(kind="length", open_min=True, label="Distance Min", min=OPEN_MIN, soft_max=20, tip="Nearest camera distance"),
    "camera.distance_max": dict(kind="length", open_min=True, label="Distance Max", min=OPEN_MIN, soft_max=20, tip="Farthest camera distance"),
    "camera.fill_fraction": dict(kind="factor", open_min=True, label="Fill", min=OPEN_MIN, max=1, tip="Fraction of the frame the object's bounding sphere fills"),
    "camera.jitter_deg": dict(label="Jitter", min=0, max=90, tip="Random angular jitter per view"),
    "camera.roll_deg": dict(label="Roll", min=0, max=180, tip="Random roll about the viewing axis, up to this angle"),
    "camera.lens_mm": dict(kind="lens", label="Lens", min=1, max=5000, tip="Lens focal length"),
    "camera.sensor_width_mm": dict(kind="lens", label="Sensor", min=1, max=200, tip="Sensor width (sensor fit horizontal)"),
    "camera.clip_start": dict(kind="length", open_min=True, label="Clip Start", min=OPEN_MIN, soft_max=10, tip="Camera near clip distance"),
    "camera.clip_end": dict(kind="length", open_min=True, label="Clip End", min=OPEN_MIN, soft_max=10000, tip="Camera far clip distance"),
    "lighting.preset": dict(label="Preset"),
    "lighting.strength": dict(label="Strength", min=0, max=1000, soft_max=10, tip="Multiplier on the preset's light energy"),
    "lighting.color": dict(label="Color", tip="Light colour (linear RGB)"),
    "lighting.randomize": dict(label="Randomize"),
    "lighting.hdri_path": dict(kind="path", label="HDRI", tip="An .hdr or .exr environment map"),
    "lighting.hdri_strength": dict(label="HDRI Power", min=0, max=1000, soft_max=10, tip="Environment map strength"),
    "lighting.hdri_random_rotation": dict(label="Random Spin", tip="Rotate the environment map randomly about Z, per object"),
    "background.transparent": dict(label="Transparent", tip="Transparent film (RGBA output)"),
    "background.color": dict(label="Color", tip="World background colour (linear RGB)"),
    "background.world_strength": dict(label="Strength", min=0, max=1000, soft_max=10, tip="World background strength"),
    "normalize.mode": dict(label="Normalize"),
    "normalize.frame": dict(label="Frame", min=0, tip="Animation frame the asset is normalised and rendered at"),
    "render.engine": dict(label="Engine"),
    "render.resolution_x": dict(kind="pixels", label="Width", min=8, max=16384, tip="Image width in pixels"),
    "render.resolution_y": dict(kind="pixels", label="Height", min=8, max=16384, tip="Image height in pixels"),
    "render.samples": dict(label="Samples", min=1, max=65536, soft_max=4096, tip="Render samples per pixel"),
    "render.denoise": dict(label="Denoise", tip="Denoise each view"),
    "render.file_format": dict(label="Format"),
    # The Render > Quality panel shows these under a heading per group (short labels that fit the
    # sidebar; messages name them "Render > Bounces > Diffuse").
    "render.view_transform": dict(label="View", group="Color", tip="View transform: how scene light becomes pixel values"),
    "render.look": dict(label="Look", group="Color"),
    "render.exposure": dict(label="Exposure", group="Color", min=-32, max=32, soft_min=-10, soft_max=10, tip="Exposure in stops"),
    "render.filter_type": dict(label="Filter", group="Sampling", tip="Pixel filter"),
    "render.filter_width": dict(label="Filter Width", group="Sampling", min=0.01, max=10, tip="Pixel filter width in pixels"),
    "render.adaptive_sampling": dict(label="Adaptive", group="Sampling", tip="Adaptive sampling: a pixel stops once its noise is low"),
    "render.adaptive_threshold": dict(label="Threshold", group="Sampling", min=0, max=1, tip="Adaptive sampling noise threshold (0: automatic)"),
    "render.adaptive_min_samples": dict(label="Minimum", group="Sampling", min=0, max=4096, tip="Adaptive sampling minimum samples (0: automatic)"),
    "render.light_tree": dict(label="Light Tree", group="Sampling", tip="Cycles many-light sampling (3.5+)"),
    **{f"render.{name}": dict(label=BOUNCE_LABELS.get(name, name.split("_")[0].title()), group="Bounces", min=0, max=1024,
                              tip=f"Cycles light-path bounce limit: {name.replace('_', ' ')}") for name in S.BOUNCE_FIELDS},
    "render.denoiser": dict(label="Denoiser", group="Denoise"),
    "render.denoise_prefilter": dict(label="Prefilter", group="Denoise"),
    "render.denoise_quality": dict(label="Quality", group="Denoise"),
    "render.denoise_input_passes": dict(label="Passes", group="Denoise", tip="The passes the denoiser reads"),
    "render.outputs": dict(label="Outputs", tip="Files per object, comma separated: rgba, npy_poses, trellis_transforms, syncdreamer_meta, depth, normal, albedo, mask"),
    "lighting.default_point_light": dict(label="Point Light", tip="Add Blender's startup 1000 W point light, as scripts that never delete it do"),
    "render.timeout_s": dict(kind="seconds", open_min=True, label="Timeout", min=OPEN_MIN, soft_max=7200, tip="Seconds before a hung render is killed"),
}


@dataclasses.dataclass(frozen=True)
class Field:
    path: str  # "camera.lens_mm" or "seed"
    section: str  # "" for top-level fields
    name: str
    kind: str  # int, float, angle, length, lens, factor, pixels, seconds, bool, str, path, enum, color, floats, rows
    default: object
    hints: dict

    @property
    def label(self):
        return self.hints.get("label", self.name.replace("_", " ").title())

    @property
    def tip(self):
        return self.hints.get("tip", self.label)


def _kind(path, name, annotation):
    hint = HINTS.get(path, {})
    if "kind" in hint:
        return hint["kind"]
    if path in ENUMS:
        return "enum"
    if annotation == "list[list[float]]":
        return "rows"
    if annotation == "list[float]":
        return "color" if name == "color" else "floats"
    if annotation == "list[str]":
        return "names"
    if annotation == "float" and name.endswith("_deg"):
        return "angle"
    return annotation  # int, float, bool, str


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def _fields_of(cls, section, only=None):
    out = []
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        path = f"{section}.{f.name}" if section else f.name
        out.append(Field(path, section, f.name, _kind(path, f.name, f.type), _default(f), HINTS.get(path, {})))
    return out


FIELDS = {"": _fields_of(S.ViewSpec, "", TOP_FIELDS)}
for _sec in SECTIONS:
    FIELDS[_sec] = _fields_of(S.SECTIONS[_sec], _sec)
BY_PATH = {fld.path: fld for flds in FIELDS.values() for fld in flds}


# --- value conversion --------------------------------------------------------------------------
def _num(v):
    """Blender stores floats as float32: keep 6 significant digits so 0.01 stays 0.01."""
    return float("%.6g" % v)


def _fmt(v):
    return "%g" % _num(v)


def _parse_floats(path, text):
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise S.SpecError(f"{path}: {text!r} is not a list of numbers") from None


def to_prop(fld, value):
    """Spec value -> property value."""
    k = fld.kind
    if k == "angle":
        return math.radians(value)
    if k == "color":
        return tuple(float(c) for c in value)
    if k == "floats":
        return ", ".join(_fmt(v) for v in value)
    if k == "rows":
        return "; ".join(" ".join(_fmt(v) for v in row) for row in value)
    if k == "names":
        return ", ".join(value)
    return value


def to_spec(fld, value):
    """Property value -> spec (JSON) value."""
    k = fld.kind
    if k == "angle":
        return round(math.degrees(value), 4)
    if k in ("float", "length", "lens", "factor", "seconds"):
        return _num(value)
    if k == "color":
        return [_num(c) for c in value]
    if k == "floats":
        return _parse_floats(fld.path, value)
    if k == "rows":
        return [_parse_floats(fld.path, row) for row in value.split(";") if row.strip()]
    if k == "names":
        return [part for part in value.replace(",", " ").split() if part]
    if k in ("int", "pixels"):
        return int(value)
    if k == "bool":
        return bool(value)
    return str(value)


FLOAT_KINDS = ("float", "angle", "length", "lens", "factor", "seconds", "color")


def _f32(value):
    if isinstance(value, (tuple, list)):
        return tuple(_f32(v) for v in value)
    return struct.unpack("f", struct.pack("f", value))[0]


def _value(fld, prop_value, exact):
    """A float the user has not touched since the spec was applied keeps its exact (float64) value."""
    if fld.kind in FLOAT_KINDS and exact is not None:
        try:
            if _f32(to_prop(fld, exact)) == _f32(tuple(prop_value) if fld.kind == "color" else prop_value):
                return exact
        except (TypeError, ValueError, struct.error):
            pass
    return to_spec(fld, prop_value)


def settings_to_dict(settings):
    """The spec dict for a settings object (the scene's PropertyGroup or any attribute holder)."""
    data = {"version": S.SPEC_VERSION}
    try:
        exact = json.loads(getattr(settings, "exact_json", "") or "{}")
    except ValueError:
        exact = {}
    for section, flds in FIELDS.items():
        holder = getattr(settings, section) if section else settings
        target = data.setdefault(section, {}) if section else data
        known = exact.get(section, {}) if section else exact
        known = known if isinstance(known, dict) else {}
        for fld in flds:
            target[fld.name] = _value(fld, getattr(holder, fld.name), known.get(fld.name))
    return data


def settings_to_spec(settings):
    """A validated ViewSpec. Raises SpecError naming the field."""
    return S.spec_from_dict(settings_to_dict(settings))


def check_ranges(data):
    """SpecError for a number the panel's property cannot hold (it would be clamped silently)."""
    for section, flds in FIELDS.items():
        values = data[section] if section else data
        for fld in flds:
            value, low, high = values[fld.name], fld.hints.get("min"), fld.hints.get("max")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if low is not None and value < low:
                raise S.SpecError(f"{fld.path}: {value:g} is below {low:g}, the least the panel holds")
            if high is not None and value > high:
                raise S.SpecError(f"{fld.path}: {value:g} is above {high:g}, the most the panel holds")


def spec_to_settings(spec, settings):
    """Write every field of a ViewSpec into the settings (and its exact values beside them:
    Blender stores floats as float32). SpecError, and nothing written, for a value the panel
    cannot hold."""
    data = spec.to_dict()
    check_ranges(data)
    if hasattr(settings, "exact_json"):
        settings.exact_json = json.dumps(data)
    for section, flds in FIELDS.items():
        holder = getattr(settings, section) if section else settings
        values = data[section] if section else data
        for fld in flds:
            setattr(holder, fld.name, to_prop(fld, values[fld.name]))
