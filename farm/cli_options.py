"""What several `farm` commands share: their options, range checks, and turning the options into
a ViewSpec and an asset list."""
from __future__ import annotations

import click

from .sources import source_names

DEFAULT_ADDR = "tcp://127.0.0.1:5555"


class UsageProblem(ValueError):
    """Bad command-line input that click itself does not catch."""


def check_range(name: str, value, lo, hi=None):
    if value is None:
        return None
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise UsageProblem(f"{name}: {value} is out of range; must be {bound}")
    return value


def resolve_spec(preset: str | None, spec_file: str | None, views=None, resolution=None, samples=None,
                 engine=None, source: str | None = None):
    """The ViewSpec from --preset or --spec (default preset: mvcap), with the overrides applied.
    When --views changes the cameras of the spec's pattern (not prefix-stable), a warning says so;
    not for a `source` whose --views means something else (mvimgnet: frames)."""
    from blender_addon.rig.patterns import views_override_warning
    from blender_addon.rig.presets import load_preset
    from blender_addon.rig.spec import load_spec

    from .sources import get_source

    if preset and spec_file:
        raise UsageProblem("--preset and --spec: give one, not both")
    check_range("--views", views, 1, 100000)
    check_range("--resolution", resolution, 8, 16384)
    check_range("--samples", samples, 1, 65536)
    spec = load_spec(spec_file) if spec_file else load_preset(preset or "mvcap")
    warning = views_override_warning(spec, views) if source is None or get_source(source).needs_spec else None
    if warning:
        click.echo(f"warning: {warning}", err=True)
    return spec.with_overrides(views=views, resolution=resolution, samples=samples, engine=engine)


def spec_change(rerender: bool, add_views: bool) -> str | None:
    """The job's `spec_change` from --rerender / --add-views (None: a changed spec is refused)."""
    if rerender and add_views:
        raise UsageProblem("--rerender and --add-views: give one, not both")
    return "rerender" if rerender else "add_views" if add_views else None


def spec_change_options(func):
    """--rerender and --add-views: how to go on when OUT's objects were rendered with another spec."""
    func = click.option(
        "--add-views", is_flag=True,
        help="OUT's objects have fewer views of this same spec (a random pattern, only --views larger): "
             "render only the new views of each and add them to its transforms.json.")(func)
    return click.option(
        "--rerender", is_flag=True,
        help="OUT's objects were rendered with another spec: render them again with this one; each "
             "object's old views stay until its new set is complete, then are replaced.")(func)


def resolve_inputs(paths, source, categories, limit=None, max_per_category=None):
    """The assets the command's paths name (UsageProblem when there are none)."""
    from .sources import resolve_assets

    opts = {k: v for k, v in (("limit", limit), ("max_per_category", max_per_category)) if v is not None}
    assets = resolve_assets(source, list(paths), categories, **opts)
    if not assets:
        raise UsageProblem(f"no assets found under {', '.join(paths)}")
    return assets


def job_options(views, timeout_s, max_attempts, quality: str = "warn") -> dict:
    """Checks --timeout and --max-attempts; returns the job's options (frames for mvimgnet, and
    quality "fail" when a flagged view fails its object)."""
    check_range("--timeout", timeout_s, 0.001)
    check_range("--max-attempts", max_attempts, 1, 100)
    return {**({"frames": views} if views else {}), **({"quality": quality} if quality != "warn" else {})}


_spec_options = [
    click.option("--preset", default=None, help="A named spec (default: mvcap). See blender_addon/rig/presets."),
    click.option("--spec", "spec_file", type=click.Path(dir_okay=False), default=None,
                 help="A spec JSON file (the add-on's export)."),
    click.option("--views", type=int, default=None, help="Views per object."),
    click.option("--resolution", type=int, default=None, metavar="PX", help="Square image side in pixels."),
    click.option("--samples", type=int, default=None, help="Render samples."),
    click.option("--engine", type=click.Choice(["cycles", "eevee"]), default=None, help="Render engine."),
    click.option("--source", type=click.Choice(source_names()), default="folder",
                 show_default=True, help="How to read the inputs."),
    click.option("--categories", type=click.Path(), default=None,
                 help="CSV uid,category or Objaverse-LVIS JSON {category: [uids]}. With --source folder an "
                      "asset without an entry takes its parent folder's name as its category; the summary "
                      "and the dataset card name those assets (category_from: folder in objects.jsonl)."),
    click.option("--limit", type=int, default=None, help="Only the first N assets."),
    click.option("--max-per-category", type=int, default=None, help="Only the first N assets of each category."),
    click.option("--timeout", "timeout_s", type=float, default=None, metavar="S",
                 help="Per-object render timeout in seconds (default: the spec's render.timeout_s)."),
    click.option("--max-attempts", type=int, default=3, show_default=True, help="Attempts per object."),
    click.option("--quality", type=click.Choice(["warn", "fail"]), default="warn", show_default=True,
                 help="Views the render flags (clipped: the object touches the border; out_of_frame; blank): "
                      "warn counts them in the summary and the dataset card; fail fails the object at once "
                      "(no retry; its views go to OUT/.farm/refused/ for a look, a previous set stays, it is left out "
                      "of metadata.json)."),
]


def spec_options(func):
    """The inputs and the spec: --preset/--spec and overrides, --source, limits, --timeout, --max-attempts."""
    for option in reversed(_spec_options):
        func = option(func)
    return func


def curve_option(func):
    return click.option("--curve-keys", type=click.Path(file_okay=False), default=None,
                        help="CurveZMQ key folder from `farm keys DIR`: authenticate and encrypt.")(func)


def peer_options(func):
    """--curve-keys and --key-name of a peer (without keys, a local broker's token is found by itself)."""
    func = click.option("--key-name", default="client", show_default=True,
                        help="Which key pair in --curve-keys: give workers, captioners and submitters "
                             "their own (`farm keys DIR --name NAME`).")(func)
    return curve_option(func)


def reply_option(func):
    return click.option("--reply-timeout", type=float, default=10.0, show_default=True, metavar="S",
                        help="Seconds to wait for the broker's answer.")(func)
