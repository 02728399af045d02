"""Colour, pixel filter, light paths, sampling and denoising: spec.render applied to the scene.

Names and features differ by Blender version (AgX is 4.0+, the light tree 3.5+, denoise quality
4.1+, and the denoisers a build offers depend on its libraries and GPUs). A setting the running
Blender cannot honour falls back to the nearest one it has, with a warning that the caller
records; it never fails the render. `applied` holds what Blender was actually given.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

import bpy

DENOISER_IDS = {"oidn": "OPENIMAGEDENOISE", "optix": "OPTIX"}
# A tone mapper that is missing falls back to the nearest one this Blender has.
VIEW_FALLBACKS = {"AgX": ("Filmic", "Standard"), "Filmic": ("AgX", "Standard"), "Standard": ()}
AGX_LOOK_NAMES = {"Medium Contrast": "Base Contrast"}


@dataclass
class AppliedSettings:
    applied: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def enum_choices(owner, attr: str) -> tuple[str, ...]:
    """The identifiers a (possibly dynamic) enum property accepts right now.

    Dynamic enums (view transforms, looks, denoisers) list no items through bl_rna without a
    context; assigning an unknown value makes Blender name every allowed one, and changes nothing.
    """
    try:
        setattr(owner, attr, "\x01mvcap-probe")
    except TypeError as exc:
        listed = str(exc).rpartition(" not found in ")[2].strip()
        try:
            items = ast.literal_eval(listed)
        except (ValueError, SyntaxError):
            return ()
        return (items,) if isinstance(items, str) else tuple(items)
    return ()


def apply_color(scene, ren, out: AppliedSettings) -> None:
    """View transform, look and exposure; gamma stays 1."""
    view = scene.view_settings
    available = enum_choices(view, "view_transform")
    chosen = next((name for name in (ren.view_transform, *VIEW_FALLBACKS[ren.view_transform], "Standard")
                   if name in available), view.view_transform)
    if chosen != ren.view_transform:
        out.warnings.append(f"render.view_transform {ren.view_transform!r} is not in Blender "
                            f"{bpy.app.version_string}; using {chosen!r}")
    view.view_transform = chosen
    looks = enum_choices(view, "look")  # the looks depend on the view transform
    candidates = [ren.look, f"{chosen} - {ren.look}", f"{chosen} - {AGX_LOOK_NAMES.get(ren.look, ren.look)}"]
    look = next((name for name in candidates if name in looks), "None")
    if ren.look != "None" and look == "None":
        out.warnings.append(f"render.look {ren.look!r} is not offered for view transform {chosen!r} in "
                            f"Blender {bpy.app.version_string}; using 'None'")
    view.look = look
    view.exposure = ren.exposure
    view.gamma = 1.0
    out.applied.update(view_transform=view.view_transform, look=view.look, exposure=round(view.exposure, 6))


def apply_cycles_filter_and_paths(cyc, ren, out: AppliedSettings) -> None:
    cyc.pixel_filter_type = ren.filter_type.upper()
    cyc.filter_width = ren.filter_width
    out.applied.update(filter_type=ren.filter_type, filter_width=round(cyc.filter_width, 6))
    for name in ("max_bounces", "diffuse_bounces", "glossy_bounces", "transmission_bounces",
                 "transparent_max_bounces", "volume_bounces"):
        setattr(cyc, name, getattr(ren, name))
        out.applied[name] = getattr(cyc, name)


def apply_cycles_sampling(cyc, ren, out: AppliedSettings) -> None:
    cyc.samples = ren.samples
    cyc.use_adaptive_sampling = ren.adaptive_sampling
    cyc.adaptive_threshold = ren.adaptive_threshold
    cyc.adaptive_min_samples = ren.adaptive_min_samples
    out.applied.update(samples=cyc.samples, adaptive_sampling=cyc.use_adaptive_sampling,
                       adaptive_threshold=round(cyc.adaptive_threshold, 6),
                       adaptive_min_samples=cyc.adaptive_min_samples)
    if hasattr(cyc, "use_light_tree"):
        cyc.use_light_tree = ren.light_tree
        out.applied["light_tree"] = cyc.use_light_tree
    else:
        out.applied["light_tree"] = False
        if ren.light_tree:
            out.warnings.append(f"render.light_tree: Cycles in Blender {bpy.app.version_string} has no "
                                "light tree (3.5+); rendering without it")


def _pick_denoiser(cyc, ren, out: AppliedSettings) -> str:
    """The denoiser Cycles offers that is nearest the spec's: the asked one, then OIDN, else none."""
    available = enum_choices(cyc, "denoiser")
    for name in (ren.denoiser, "oidn"):
        if DENOISER_IDS[name] in available:
            if name != ren.denoiser:
                out.warnings.append(f"render.denoiser {ren.denoiser!r} is not available here (no OptiX "
                                    "device); denoising with 'oidn'")
            return name
    out.warnings.append(f"render.denoiser {ren.denoiser!r}: this Blender's Cycles offers no denoiser "
                        f"(Blender {bpy.app.version_string}, denoisers: {', '.join(available) or 'none'}); "
                        "rendering without denoising")
    return "none"


def apply_cycles_denoise(cyc, ren, out: AppliedSettings) -> None:
    denoiser = _pick_denoiser(cyc, ren, out) if ren.denoise else "none"
    cyc.use_denoising = denoiser != "none"
    if hasattr(cyc, "use_preview_denoising"):
        cyc.use_preview_denoising = False
    out.applied["denoiser"] = denoiser
    if denoiser == "none":
        out.applied.update(denoise_prefilter=None, denoise_quality=None, denoise_input_passes=None)
        return
    cyc.denoiser = DENOISER_IDS[denoiser]
    cyc.denoising_input_passes = ren.denoise_input_passes.upper()
    cyc.denoising_prefilter = ren.denoise_prefilter.upper()
    quality = None
    if hasattr(cyc, "denoising_quality"):
        cyc.denoising_quality = ren.denoise_quality.upper()
        quality = ren.denoise_quality
    elif ren.denoise_quality != "high":
        out.warnings.append(f"render.denoise_quality {ren.denoise_quality!r}: Blender "
                            f"{bpy.app.version_string} has one denoise quality (4.1+ has three); ignored")
    out.applied.update(denoise_prefilter=ren.denoise_prefilter, denoise_quality=quality,
                       denoise_input_passes=ren.denoise_input_passes)


def apply_cycles(scene, ren) -> AppliedSettings:
    """Every spec.render quality field that reaches Cycles, plus colour management."""
    out = AppliedSettings()
    cyc = scene.cycles
    apply_cycles_sampling(cyc, ren, out)
    apply_cycles_filter_and_paths(cyc, ren, out)
    apply_cycles_denoise(cyc, ren, out)
    apply_color(scene, ren, out)
    return out


def apply_eevee(scene, ren) -> AppliedSettings:
    """EEVEE takes the colour settings and the filter width; the rest is Cycles-only (null)."""
    out = AppliedSettings()
    scene.eevee.taa_render_samples = ren.samples
    scene.render.filter_size = ren.filter_width
    out.applied.update(samples=ren.samples, filter_type=None, filter_width=round(scene.render.filter_size, 6),
                       denoiser="none")
    if ren.filter_type != "blackman_harris":
        out.warnings.append(f"render.filter_type {ren.filter_type!r}: EEVEE has its own filter; only "
                            "filter_width applies")
    apply_color(scene, ren, out)
    return out
