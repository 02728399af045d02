"""Lighting presets as plain data: which lights and which world a view is rendered under.

Energies are Blender's: Watts for AREA/POINT/SPOT, W/m² (the `strength`) for SUN. The presets
aim for a white diffuse surface facing the key light to render at about 0.8-1.0 (linear), the
exposure of allenai/objaverse-rendering's area light, for the unit object at distance ~1.5.
The formulas below turn such a target into Watts, so the numbers are not magic.

`spec.lighting.strength` scales every light source of a preset (the world too, where the world
is the source: `uniform`, `hdri`); `spec.lighting.color` tints the lights;
`spec.background.world_strength` scales the world. `spec.lighting.randomize` picks the scope of
the random draws: `none` (nominal values), `object` (one draw per uid) or `view` (one per view).
`spec.lighting.default_point_light` adds Blender's startup light as the originals left it (not
scaled or tinted). The peers' presets cite their sources' lines in rig/presets/*.json.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np

from .cameras import c2w_from_view, euler_xyz_from_rotation, orbit_position, orbit_rotation
from .seeding import rng_for
from .spec import ViewSpec

# Blender's factory-startup world colour. The originals kept it, so it is their ambient light.
BLENDER_DEFAULT_WORLD_GREY = 0.0508761
# Blender's default sun angular diameter (radians).
BLENDER_DEFAULT_SUN_ANGLE = math.radians(0.526)
POINTING_DOWN = (0.0, 0.0, 0.0)  # a light's local -z is its direction, so no rotation points at -Z


@dataclass(frozen=True)
class LightDef:
    """One light. `size`: AREA side (m), POINT/SPOT radius (m), SUN angular diameter (radians)."""

    kind: str  # "AREA" | "SUN" | "POINT" | "SPOT"
    location: tuple[float, float, float]
    rotation_euler: tuple[float, float, float]  # radians, Blender 'XYZ'; the light shines along local -z
    energy: float
    size: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shape: str = "SQUARE"
    name: str = "Light"
    use_shadow: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorldDef:
    """The world shader: a flat colour, or an HDRI (`hdri_path`) turned by `hdri_rotation_z` radians."""

    color: tuple[float, float, float]
    strength: float
    hdri_path: str = ""
    hdri_rotation_z: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- exposure: Watts for a wanted brightness ---------------------------------------------------
def area_power_for(target: float, size: float, distance: float) -> float:
    """Watts for a square AREA light of side `size` so that a white diffuse surface `distance`
    away on its axis renders at `target`.

    A Lambertian emitter of power P and area A has radiance P/(πA); a diffuse surface under a
    disk of angular radius θ then reflects radiance L·sin²θ. The square is taken as the disk of
    equal area. For objaverse-rendering's 100 m light this gives 30000 W for target 0.95.
    """
    disk_radius_sq = size * size / math.pi
    sin_sq = disk_radius_sq / (disk_radius_sq + distance * distance)
    return target * math.pi * size * size / sin_sq


def point_power_for(target: float, distance: float) -> float:
    """Watts for a POINT light: Cycles' point light gives P / (4π² d²) on a white diffuse surface."""
    return target * 4.0 * math.pi**2 * distance * distance


# --- presets -----------------------------------------------------------------------------------
def _draw(rng: np.random.Generator | None, low: float, high: float, nominal: float) -> float:
    """A uniform draw, or the nominal value when lighting is not randomised."""
    return nominal if rng is None else float(rng.uniform(low, high))


def _choose(rng: np.random.Generator | None, choices: list[float], nominal: float) -> float:
    return nominal if rng is None else float(choices[rng.integers(len(choices))])


def _ambient_world() -> WorldDef:
    return WorldDef(color=(BLENDER_DEFAULT_WORLD_GREY,) * 3, strength=1.0)


# Above any normalised object (unit box top 0.5, unit sphere top 1.0). objaverse-rendering put its
# light at z=0.5, coplanar with the top of every object whose height is its largest side, so such
# tops got no light (a rendered unit cube's top face is black). Below a 100 m light the
# irradiance does not depend on the height, so lifting it changes nothing else.
OVERHEAD_LIGHT_HEIGHT = 2.0


def _area_top(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    # allenai/objaverse-rendering: a 100 m AREA light (object scale 100 on a 1 m light) of
    # 30000 W above the object; its randomize_lighting() draws 5000-35000 W.
    energy = _draw(rng, 5000.0, 35000.0, 30000.0)
    light = LightDef("AREA", (0.0, 0.0, OVERHEAD_LIGHT_HEIGHT), POINTING_DOWN, energy, 100.0, name="Area_Top")
    return [light], _ambient_world()


def _random_area(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    # cvlab-columbia/zero123 randomize_lighting(): a 100 m AREA light (scale 100 on light_add's 1 m),
    # 300-600 W, at x, y in [-1, 1] and z in [0.5, 1.5], drawn in that order once per object. So dim
    # a light gives little: zero123's renders were lit mostly by Blender's default point light,
    # which its script never deleted (lighting.default_point_light).
    energy = _draw(rng, 300.0, 600.0, 450.0)
    location = (_draw(rng, -1.0, 1.0, 0.0), _draw(rng, -1.0, 1.0, 0.0), _draw(rng, 0.5, 1.5, 1.0))
    return [LightDef("AREA", location, POINTING_DOWN, energy, 100.0, name="Area_Random")], _ambient_world()


# Blender's factory-startup "Light" (the same since 2.80; read from bpy 5.0.1's startup file).
BLENDER_DEFAULT_POINT_LIGHT = LightDef(
    "POINT", (4.076245, 1.005454, 5.903862), (0.650328, 0.055217, 1.866391), 1000.0, 0.1, name="Default_Light",
)
# Blender 3.x's soft size for a light made with bpy.data.lights.new (DNA default area_size).
BLENDER_NEW_LIGHT_SIZE = 0.25


def _trellis(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    # microsoft/TRELLIS dataset_toolkits/blender_script/render.py init_lighting(): a 1000 W point
    # at (4, 1, 6) and a 10000 W AREA light of 0.25 m x scale 100 = 25 m at z = 10, facing down.
    # Its third light, 1000 W at z = -10 facing down (-Z), faces away from the object and is left out.
    point = LightDef("POINT", (4.0, 1.0, 6.0), (0.0, 0.0, 0.0), 1000.0, BLENDER_NEW_LIGHT_SIZE, name="Default_Light")
    top = LightDef("AREA", (0.0, 0.0, 10.0), POINTING_DOWN, 10000.0, 100.0 * BLENDER_NEW_LIGHT_SIZE, name="Top_Light")
    return [point, top], _ambient_world()


# (name, azimuth, elevation, brightness target): a studio rig around the object's front (-Y).
THREE_POINT_RIG = (("Key", -60.0, 35.0, 0.8), ("Fill", -150.0, 15.0, 0.3), ("Rim", 90.0, 50.0, 0.5))
THREE_POINT_DISTANCE = 3.0
THREE_POINT_SIZE = 1.0


def _three_point(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    # randomised: the whole rig turns about Z and each light's energy varies by ±20%
    rig_turn = _draw(rng, 0.0, 360.0, 0.0)
    lights = []
    for name, azimuth, elevation, target in THREE_POINT_RIG:
        azimuth += rig_turn
        position = orbit_position(azimuth, elevation, THREE_POINT_DISTANCE)
        rotation = euler_xyz_from_rotation(orbit_rotation(azimuth, elevation))
        energy = area_power_for(target, THREE_POINT_SIZE, THREE_POINT_DISTANCE) * _draw(rng, 0.8, 1.2, 1.0)
        lights.append(LightDef("AREA", tuple(position.tolist()), rotation, energy, THREE_POINT_SIZE, name=name))
    return lights, _ambient_world()


# allenai/objaverse-xl randomize_lighting(): four shadowless suns, energies drawn from these lists.
# It rendered through Filmic (Blender 3.2's default view transform), which compresses bright
# values; under 'Standard' the same strengths clip (a white top face lit by three suns reaches
# 2.2), so use render.view_transform "Filmic" as the objaverse-xl-12 preset does, or lighting.strength 0.4.
SUN_RIG = (
    ("Key_Light", (0.785398, 0.0, -0.785398), (3.0, 4.0, 5.0)),
    ("Fill_Light", (0.785398, 0.0, 2.35619), (2.0, 3.0, 4.0)),
    ("Rim_Light", (-0.785398, 0.0, -3.92699), (3.0, 4.0, 5.0)),
    ("Bottom_Light", (3.14159, 0.0, 0.0), (1.0, 2.0, 3.0)),
)


def _sun_rig_random(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    lights = [
        LightDef("SUN", (0.0, 0.0, 0.0), rotation, _choose(rng, list(choices), choices[1]),
                 BLENDER_DEFAULT_SUN_ANGLE, name=name, use_shadow=False)
        for name, rotation, choices in SUN_RIG
    ]
    return lights, _ambient_world()


def _uniform(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    # no lights: a constant world of the lighting colour (SyncDreamer's 0.5 grey environment)
    color = tuple(float(c) for c in spec.lighting.color)
    return [], WorldDef(color=color, strength=_draw(rng, 0.75, 1.25, 1.0))


def _hdri(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    turn = _draw(rng, 0.0, 2.0 * math.pi, 0.0) if spec.lighting.hdri_random_rotation else 0.0
    world = WorldDef((1.0, 1.0, 1.0), spec.lighting.hdri_strength, spec.lighting.hdri_path, turn)
    return [], world


HEADLIGHT_TARGET = 0.8
HEADLIGHT_LIFT = 0.25  # raised above the lens by this fraction of the distance, so shapes keep some shading
# exposure is set for the object's near side, the unit box's inscribed sphere, not its centre:
# aimed at the centre, the faces nearest the camera rendered at about 1.8
NEAR_SURFACE_RADIUS = 0.5


def _camera_headlight(spec: ViewSpec, rng: np.random.Generator | None, c2w: np.ndarray | None) -> tuple:
    camera_position, camera_up = c2w[:3, 3], c2w[:3, 1]
    distance = float(np.linalg.norm(camera_position))
    location = camera_position + HEADLIGHT_LIFT * distance * camera_up
    light_distance = float(np.linalg.norm(location))
    to_surface = max(light_distance - NEAR_SURFACE_RADIUS, 0.25 * light_distance)
    energy = point_power_for(HEADLIGHT_TARGET, to_surface) * _draw(rng, 0.8, 1.2, 1.0)
    rotation = euler_xyz_from_rotation(c2w[:3, :3])
    light = LightDef("POINT", tuple(location.tolist()), rotation, energy, 0.05 * distance, name="Headlight")
    return [light], _ambient_world()


PRESET_BUILDERS: dict[str, Callable[..., tuple[list[LightDef], WorldDef]]] = {
    "area_top": _area_top,
    "three_point": _three_point,
    "sun_rig_random": _sun_rig_random,
    "uniform": _uniform,
    "random_area": _random_area,
    "hdri": _hdri,
    "camera_headlight": _camera_headlight,
    "trellis": _trellis,
}
# the world is the light source here, so lighting.strength scales it
WORLD_LIT_PRESETS = ("uniform", "hdri")


def lighting_varies_per_view(spec: ViewSpec) -> bool:
    """True when lights must be rebuilt for every view."""
    return spec.lighting.randomize == "view" or spec.lighting.preset == "camera_headlight"


def lights_for(
    spec: ViewSpec, uid: str, view: Any = None, c2w: np.ndarray | None = None
) -> tuple[list[LightDef], WorldDef]:
    """Lights and world for object `uid` (and `view` when lighting varies per view).

    `c2w` (GL axes) may be passed instead of being recomputed from `view`; camera_headlight
    needs one of them, and randomize="view" needs `view` (its index seeds the draw).
    """
    lighting = spec.lighting
    if lighting.randomize == "view" and view is None:
        raise ValueError("lighting.randomize is 'view': lights_for needs the view")
    if lighting.preset == "camera_headlight" and c2w is None:
        if view is None:
            raise ValueError("lighting.preset is 'camera_headlight': lights_for needs the view or its c2w")
        c2w = c2w_from_view(view)

    if lighting.randomize == "none":
        rng = None
    elif lighting.randomize == "object":
        rng = rng_for(spec.seed, uid, "lighting")
    else:
        rng = rng_for(spec.seed, uid, "lighting", view.index)

    lights, world = PRESET_BUILDERS[lighting.preset](spec, rng, None if c2w is None else np.asarray(c2w, float))
    tint = tuple(float(c) for c in lighting.color)
    lights = [
        replace(light, energy=light.energy * lighting.strength, color=tuple(a * b for a, b in zip(light.color, tint)))
        for light in lights
    ]
    if lighting.default_point_light:  # Blender's own light, as the originals left it: not scaled, not tinted
        lights.append(BLENDER_DEFAULT_POINT_LIGHT)
    world_scale = spec.background.world_strength * (lighting.strength if lighting.preset in WORLD_LIT_PRESETS else 1.0)
    return lights, replace(world, strength=world.strength * world_scale)
