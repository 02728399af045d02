"""ViewSpec: the versioned JSON description of a view rig.

One format for the add-on's export, `farm render --spec` and the presets. Every field has a
default, so `ViewSpec()` is a valid spec and a partial JSON document fills in the rest.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fileio import atomic_write_text

SPEC_VERSION = 2
# Version 1 specs load as version 2: the fields are the same, but version 2 draws every random
# camera quantity per view, so view k does not depend on the number of views. A version-1 spec
# therefore renders other poses than it did under version 1 (see CHANGELOG.md).
UPGRADABLE_VERSIONS = (1,)

PATTERNS = (
    "ring", "hemisphere_random", "sphere_random", "fibonacci", "hammersley", "explicit",
    # the peers' own samplers, kept for faithful presets (see patterns.py)
    "cube_normalized_random", "ring_random_elevation", "trellis_hammersley",
)
DISTANCE_MODES = ("fixed", "range", "auto")
LIGHTING_PRESETS = (
    "area_top",
    "three_point",
    "sun_rig_random",
    "uniform",
    "random_area",
    "hdri",
    "camera_headlight",
    "trellis",
)
RANDOMIZE_SCOPES = ("none", "object", "view")
NORMALIZE_MODES = ("unit_box", "unit_sphere", "none")
ENGINES = ("cycles", "eevee")
FILE_FORMATS = ("PNG", "JPEG")
# What a render writes beside transforms.json: the views ("rgba"), pose files for peers' loaders,
# and extra passes (Cycles only). See rig/peer_outputs.py and rig/pass_files.py.
POSE_OUTPUTS = ("npy_poses", "trellis_transforms", "syncdreamer_meta")
PASS_OUTPUTS = ("depth", "normal", "albedo", "mask")
OUTPUTS = ("rgba", *POSE_OUTPUTS, *PASS_OUTPUTS)
# Colour management, named as in Blender. Looks are version-neutral: AgX's own carry an "AgX - "
# prefix in Blender, and its neutral one is called "Base Contrast" there (scene/render_settings.py).
VIEW_TRANSFORMS = ("Standard", "Filmic", "AgX")
LOOKS = (
    "None", "Very High Contrast", "High Contrast", "Medium High Contrast", "Medium Contrast",
    "Medium Low Contrast", "Low Contrast", "Very Low Contrast", "Punchy", "Greyscale",
)
FILTER_TYPES = ("blackman_harris", "gaussian", "box")
DENOISERS = ("oidn", "optix")
DENOISE_PREFILTERS = ("accurate", "fast", "none")
DENOISE_QUALITIES = ("high", "balanced", "fast")
DENOISE_INPUT_PASSES = ("rgb", "rgb_albedo", "rgb_albedo_normal")
BOUNCE_FIELDS = (
    "max_bounces", "diffuse_bounces", "glossy_bounces", "transmission_bounces",
    "transparent_max_bounces", "volume_bounces",
)


class SpecError(ValueError):
    """A spec that cannot be used. The message is one line and names the field."""


@dataclass
class CameraSpec:
    pattern: str = "hemisphere_random"
    num_views: int = 12
    # ring: every elevation gets num_views azimuths, starting at azimuth_offset_deg
    elevations_deg: list[float] = field(default_factory=lambda: [30.0])
    azimuth_offset_deg: float = 0.0
    # hemisphere_random / fibonacci / hammersley: the band of elevations to cover
    elevation_min_deg: float = 0.0
    elevation_max_deg: float = 90.0
    # explicit: [[azimuth_deg, elevation_deg, distance], ...]; distance <= 0 means "use distance_mode"
    explicit: list[list[float]] = field(default_factory=list)
    distance_mode: str = "fixed"
    distance: float = 1.5
    distance_min: float = 1.2
    distance_max: float = 2.0
    # auto: the bounding sphere's diameter fills this fraction of the frame's narrower side
    fill_fraction: float = 0.8
    jitter_deg: float = 0.0
    roll_deg: float = 0.0
    lens_mm: float = 35.0
    sensor_width_mm: float = 32.0
    clip_start: float = 0.01
    clip_end: float = 100.0


@dataclass
class LightingSpec:
    preset: str = "area_top"
    strength: float = 1.0
    color: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    randomize: str = "object"
    hdri_path: str = ""
    hdri_strength: float = 1.0
    hdri_random_rotation: bool = True
    # Blender's factory-startup point light (1000 W), which scripts that never delete it render with
    default_point_light: bool = False


@dataclass
class BackgroundSpec:
    transparent: bool = True
    color: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    world_strength: float = 1.0


@dataclass
class NormalizeSpec:
    mode: str = "unit_box"
    frame: int = 0


@dataclass
class RenderSpec:
    engine: str = "cycles"
    resolution_x: int = 512
    resolution_y: int = 512
    samples: int = 32
    denoise: bool = False
    file_format: str = "PNG"
    timeout_s: float = 600.0
    # Colour: how scene light becomes pixel values. Standard shows glTF base colours as authored.
    view_transform: str = "Standard"
    look: str = "None"
    exposure: float = 0.0
    # Pixel filter (Cycles; EEVEE takes only the width). Blender's default: 1.5 px Blackman-Harris.
    filter_type: str = "blackman_harris"
    filter_width: float = 1.5
    # Light-path bounces (Cycles). The defaults are objaverse-rendering's; max is Blender's.
    max_bounces: int = 12
    diffuse_bounces: int = 1
    glossy_bounces: int = 1
    transmission_bounces: int = 3
    transparent_max_bounces: int = 3
    volume_bounces: int = 0
    # Adaptive sampling (Cycles): a pixel stops once its noise is below the threshold;
    # threshold 0 and min samples 0 let Cycles choose from the sample count.
    adaptive_sampling: bool = True
    adaptive_threshold: float = 0.01
    adaptive_min_samples: int = 0
    # Denoising (Cycles, when denoise is true; denoise false is "no denoiser").
    denoiser: str = "oidn"
    denoise_prefilter: str = "accurate"
    denoise_quality: str = "high"  # Blender 4.1+; older ones always denoise at their one quality
    denoise_input_passes: str = "rgb_albedo_normal"
    light_tree: bool = True  # Cycles 3.5+: many-light sampling
    # files written per object; "rgba" (the views) is always one of them (OUTPUTS)
    outputs: list[str] = field(default_factory=lambda: ["rgba"])


@dataclass
class ViewSpec:
    version: int = SPEC_VERSION
    name: str = "custom"
    description: str = ""
    reproduces: str = ""
    seed: int = 0
    camera: CameraSpec = field(default_factory=CameraSpec)
    lighting: LightingSpec = field(default_factory=LightingSpec)
    background: BackgroundSpec = field(default_factory=BackgroundSpec)
    normalize: NormalizeSpec = field(default_factory=NormalizeSpec)
    render: RenderSpec = field(default_factory=RenderSpec)

    # --- conversions -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def spec_hash(self) -> str:
        """A stable short hash of the spec's content, for provenance."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_overrides(
        self,
        views: int | None = None,
        resolution: int | None = None,
        samples: int | None = None,
        engine: str | None = None,
    ) -> "ViewSpec":
        """A validated copy with the common command-line overrides applied."""
        data = self.to_dict()
        if views is not None:
            data["camera"]["num_views"] = views
        if resolution is not None:
            data["render"]["resolution_x"] = resolution
            data["render"]["resolution_y"] = resolution
        if samples is not None:
            data["render"]["samples"] = samples
        if engine is not None:
            data["render"]["engine"] = engine
        return spec_from_dict(data)

    @property
    def view_count(self) -> int:
        cam = self.camera
        if cam.pattern == "explicit":
            return len(cam.explicit)
        if cam.pattern == "ring":
            return cam.num_views * len(cam.elevations_deg)
        return cam.num_views


SECTIONS = {
    "camera": CameraSpec,
    "lighting": LightingSpec,
    "background": BackgroundSpec,
    "normalize": NormalizeSpec,
    "render": RenderSpec,
}


# --- parsing ---------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(path: str, value: Any, annotation: str) -> Any:
    """Check one JSON value against a dataclass field's annotation (given as a string)."""
    if annotation == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{path}: expected true or false, got {value!r}")
        return value
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SpecError(f"{path}: expected an integer, got {value!r}")
        return value
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise SpecError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if annotation == "str":
        if not isinstance(value, str):
            raise SpecError(f"{path}: expected a string, got {value!r}")
        return value
    if annotation == "list[str]":
        if not isinstance(value, list):
            raise SpecError(f"{path}: expected a list of names, got {value!r}")
        return [_coerce(f"{path}[{i}]", v, "str") for i, v in enumerate(value)]
    if annotation == "list[float]":
        if not isinstance(value, list):
            raise SpecError(f"{path}: expected a list of numbers, got {value!r}")
        return [_coerce(f"{path}[{i}]", v, "float") for i, v in enumerate(value)]
    if annotation == "list[list[float]]":
        if not isinstance(value, list):
            raise SpecError(f"{path}: expected a list of [azimuth, elevation, distance], got {value!r}")
        return [_coerce(f"{path}[{i}]", v, "list[float]") for i, v in enumerate(value)]
    raise AssertionError(f"unhandled annotation {annotation}")


def _section_from_dict(name: str, cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{name}: expected an object, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{name}.{unknown[0]}: unknown field; allowed: {', '.join(fields)}")
    kwargs = {key: _coerce(f"{name}.{key}", value, fields[key].type) for key, value in data.items()}
    return cls(**kwargs)


def spec_from_dict(data: Any) -> ViewSpec:
    """Build and validate a ViewSpec from parsed JSON. Raises SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
    top_fields = {f.name: f for f in dataclasses.fields(ViewSpec)}
    unknown = sorted(set(data) - set(top_fields))
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown field; allowed: {', '.join(top_fields)}")
    version = data.get("version", SPEC_VERSION)
    if isinstance(version, bool) or version not in (SPEC_VERSION, *UPGRADABLE_VERSIONS):
        allowed = ", ".join(str(v) for v in (*UPGRADABLE_VERSIONS, SPEC_VERSION))
        raise SpecError(f"version: unsupported spec version {version!r}; allowed: {allowed}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            kwargs[key] = _section_from_dict(key, SECTIONS[key], value)
        else:
            kwargs[key] = _coerce(key, value, top_fields[key].type)
    kwargs["version"] = SPEC_VERSION  # an older version is upgraded (see UPGRADABLE_VERSIONS)
    spec = ViewSpec(**kwargs)
    validate(spec)
    return spec


# --- validation ------------------------------------------------------------------------------
def _one_of(path: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"{path}: {value!r} is not allowed; allowed: {', '.join(allowed)}")


def _in_range(path: str, value: float, lo: float | None, hi: float | None, open_lo: bool = False) -> None:
    if lo is not None and (value < lo or (open_lo and value == lo)):
        bound = f"> {lo}" if open_lo else f">= {lo}"
        raise SpecError(f"{path}: {value} is out of range; must be {bound}" + (f" and <= {hi}" if hi is not None else ""))
    if hi is not None and value > hi:
        raise SpecError(f"{path}: {value} is out of range; must be <= {hi}")


def validate(spec: ViewSpec) -> ViewSpec:
    """Check enums and ranges. Raises SpecError naming the first bad field."""
    cam, light, bg, norm, ren = spec.camera, spec.lighting, spec.background, spec.normalize, spec.render
    _in_range("seed", spec.seed, 0, None)
    _one_of("camera.pattern", cam.pattern, PATTERNS)
    _in_range("camera.num_views", cam.num_views, 1, 100000)
    if cam.pattern == "ring" and not cam.elevations_deg:
        raise SpecError("camera.elevations_deg: a ring needs at least one elevation")
    for i, el in enumerate(cam.elevations_deg):
        _in_range(f"camera.elevations_deg[{i}]", el, -90.0, 90.0)
    _in_range("camera.elevation_min_deg", cam.elevation_min_deg, -90.0, 90.0)
    _in_range("camera.elevation_max_deg", cam.elevation_max_deg, -90.0, 90.0)
    if cam.elevation_min_deg > cam.elevation_max_deg:
        raise SpecError(
            f"camera.elevation_min_deg: {cam.elevation_min_deg} is above elevation_max_deg {cam.elevation_max_deg}"
        )
    if cam.pattern == "explicit":
        if not cam.explicit:
            raise SpecError("camera.explicit: the explicit pattern needs at least one [azimuth, elevation, distance]")
        for i, row in enumerate(cam.explicit):
            if len(row) != 3:
                raise SpecError(f"camera.explicit[{i}]: expected [azimuth_deg, elevation_deg, distance], got {row}")
            _in_range(f"camera.explicit[{i}][1]", row[1], -90.0, 90.0)
    _one_of("camera.distance_mode", cam.distance_mode, DISTANCE_MODES)
    _in_range("camera.distance", cam.distance, 0.0, None, open_lo=True)
    _in_range("camera.distance_min", cam.distance_min, 0.0, None, open_lo=True)
    _in_range("camera.distance_max", cam.distance_max, cam.distance_min, None)
    _in_range("camera.fill_fraction", cam.fill_fraction, 0.0, 1.0, open_lo=True)
    _in_range("camera.jitter_deg", cam.jitter_deg, 0.0, 90.0)
    _in_range("camera.roll_deg", cam.roll_deg, 0.0, 180.0)
    _in_range("camera.lens_mm", cam.lens_mm, 1.0, 5000.0)
    _in_range("camera.sensor_width_mm", cam.sensor_width_mm, 1.0, 200.0)
    _in_range("camera.clip_start", cam.clip_start, 0.0, None, open_lo=True)
    _in_range("camera.clip_end", cam.clip_end, cam.clip_start, None, open_lo=True)

    _one_of("lighting.preset", light.preset, LIGHTING_PRESETS)
    _in_range("lighting.strength", light.strength, 0.0, 1000.0)
    _one_of("lighting.randomize", light.randomize, RANDOMIZE_SCOPES)
    _check_color("lighting.color", light.color)
    _in_range("lighting.hdri_strength", light.hdri_strength, 0.0, 1000.0)
    if light.preset == "hdri" and not light.hdri_path:
        raise SpecError("lighting.hdri_path: the hdri preset needs a path to an .hdr or .exr file")

    _check_color("background.color", bg.color)
    _in_range("background.world_strength", bg.world_strength, 0.0, 1000.0)

    _one_of("normalize.mode", norm.mode, NORMALIZE_MODES)
    _in_range("normalize.frame", norm.frame, 0, None)

    _one_of("render.engine", ren.engine, ENGINES)
    _in_range("render.resolution_x", ren.resolution_x, 8, 16384)
    _in_range("render.resolution_y", ren.resolution_y, 8, 16384)
    _in_range("render.samples", ren.samples, 1, 65536)
    _one_of("render.file_format", ren.file_format, FILE_FORMATS)
    _in_range("render.timeout_s", ren.timeout_s, 0.0, None, open_lo=True)
    _validate_render_quality(ren)
    _validate_outputs(spec)
    return spec


def _validate_render_quality(ren: RenderSpec) -> None:
    """The colour, filter, light-path, sampling and denoising fields (Blender's own limits)."""
    _one_of("render.view_transform", ren.view_transform, VIEW_TRANSFORMS)
    _one_of("render.look", ren.look, LOOKS)
    _in_range("render.exposure", ren.exposure, -32.0, 32.0)
    _one_of("render.filter_type", ren.filter_type, FILTER_TYPES)
    _in_range("render.filter_width", ren.filter_width, 0.01, 10.0)
    for name in BOUNCE_FIELDS:
        _in_range(f"render.{name}", getattr(ren, name), 0, 1024)
    _in_range("render.adaptive_threshold", ren.adaptive_threshold, 0.0, 1.0)
    _in_range("render.adaptive_min_samples", ren.adaptive_min_samples, 0, 4096)
    _one_of("render.denoiser", ren.denoiser, DENOISERS)
    _one_of("render.denoise_prefilter", ren.denoise_prefilter, DENOISE_PREFILTERS)
    _one_of("render.denoise_quality", ren.denoise_quality, DENOISE_QUALITIES)
    _one_of("render.denoise_input_passes", ren.denoise_input_passes, DENOISE_INPUT_PASSES)


def _validate_outputs(spec: ViewSpec) -> None:
    outputs = spec.render.outputs
    for i, name in enumerate(outputs):
        _one_of(f"render.outputs[{i}]", name, OUTPUTS)
        if name in outputs[:i]:
            raise SpecError(f"render.outputs[{i}]: {name!r} is listed twice")
    if "rgba" not in outputs:
        raise SpecError("render.outputs: must include 'rgba' (the views themselves)")
    passes = [name for name in outputs if name in PASS_OUTPUTS]
    if passes and spec.render.engine != "cycles":
        raise SpecError(f"render.outputs: {passes[0]!r} needs render.engine 'cycles' (EEVEE has no such pass here)")
    if "trellis_transforms" in outputs and spec.normalize.mode != "unit_box":
        raise SpecError("render.outputs: 'trellis_transforms' needs normalize.mode 'unit_box' "
                        "(TRELLIS's aabb is the unit cube)")


def _check_color(path: str, color: list[float]) -> None:
    if len(color) != 3:
        raise SpecError(f"{path}: expected [r, g, b], got {color}")
    for i, c in enumerate(color):
        _in_range(f"{path}[{i}]", c, 0.0, None)


# --- files -----------------------------------------------------------------------------------
def load_spec(path: str | os.PathLike) -> ViewSpec:
    """Read and validate a spec file. Raises SpecError with a one-line message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"spec file {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec file {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return spec_from_dict(data)


def save_spec(spec: ViewSpec, path: str | os.PathLike) -> Path:
    """Validate and write a spec atomically."""
    validate(spec)
    return atomic_write_text(path, spec.to_json() + "\n")
