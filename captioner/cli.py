"""The `captioner` command: `serve` (broker's caption queue), `run OUT` (no broker), `presets`.

User mistakes and a model that cannot be loaded end with one line, `error: <message>`, and exit
code 2 (farm.cli_errors: the same error path as `farm`). Images that failed to caption end with
exit code 3 and an `error:` line that gives the first reason (EXIT_CODES).
"""
from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path

import click

from farm.cli_errors import OneLineErrorGroup

from .models import PRESETS, get_preset

DEFAULT_CONNECT = "tcp://127.0.0.1:5555"
EXIT_FAILED = 3
EXIT_CODES = ("Exit codes: 0 every image captioned; 2 bad usage, or the model cannot be loaded; "
              "3 some images or objects failed (the reasons are printed); 130 interrupted.")


def _log(message: str) -> None:
    click.echo(f"[captioner {time.strftime('%H:%M:%S')}] {message}", err=True)


def _model_options(func):
    options = [
        click.option("--model", "model", default=None, metavar="ID_OR_PATH",
                     help="Hub id or local folder (default: the preset's model)."),
        click.option("--preset", "preset", default=None, type=click.Choice(sorted(PRESETS)),
                     help="paper (InstructBLIP FlanT5-XL, the paper's settings), fast (SmolVLM-256M), "
                          "quality (Qwen2.5-VL-7B). Default: paper, or with --model the settings that fit "
                          "its kind (paper for InstructBLIP/BLIP-2, fast for chat models)."),
        click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
                     help="Images per generate call (default: the preset's)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--dtype", default="auto", show_default=True, help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32."),
        click.option("--prompt", default=None, help="Prompt template with {category} (default: the preset's)."),
        click.option("--max-new-tokens", type=click.IntRange(1, 1024), default=None, help="Cap on generated tokens."),
        click.option("--num-beams", type=click.IntRange(1, 64), default=None, help="Beam count (1 = greedy)."),
        click.option("--background", default=None,
                     help="Colour the RGBA renders are composited on: white, black, gray, #rrggbb or r,g,b "
                          "(default: the preset's; black for paper, as its model saw the renders, else white)."),
        click.option("--decode-threads", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Threads that decode images ahead of the model."),
        click.option("--consistency/--no-consistency", default=True, show_default=True,
                     help="Re-caption with the category forced as a prefix when a caption does not name it."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _engine_factory(opts: dict):
    """Load the model once; return (make_engine, summary, batch_size, model key)."""
    from dataclasses import replace

    from farm.protocol import caption_model_key

    from .engine import CaptionEngine
    from .images import parse_background
    from .models import describe, load_backend
    from .prompts import check_template

    background = parse_background(opts["background"]) if opts["background"] is not None else None
    if opts["prompt"] is not None:
        check_template(opts["prompt"])
    preset = get_preset(opts["preset"]) if opts["preset"] else None
    model = caption_model_key(opts["model"] or (preset or PRESETS["paper"]).model)
    backend = load_backend(model, device=opts["device"], dtype=opts["dtype"])
    if preset is None:
        preset = PRESETS["paper"] if backend.style == "blip" else PRESETS["fast"]
    generation = preset.generation
    if opts["max_new_tokens"] is not None:
        generation = replace(generation, max_new_tokens=opts["max_new_tokens"])
    if opts["num_beams"] is not None:
        generation = replace(generation, num_beams=opts["num_beams"])
    backend.generation = generation
    batch_size = opts["batch_size"] or preset.batch_size
    if background is None:
        background = preset.background
    prompt = opts["prompt"] or preset.prompt
    make_engine = partial(CaptionEngine, backend, prompt_template=prompt, batch_size=batch_size,
                          background=background, decode_threads=opts["decode_threads"],
                          consistency=opts["consistency"], preset=preset.name,
                          prompt_source="--prompt" if opts["prompt"] is not None else preset.prompt_source)
    summary = (f"model {describe(backend)}, preset {preset.name}, batch {batch_size}, "
               f"beams {generation.num_beams}, max_new_tokens {generation.max_new_tokens}, "
               f"background {background}, consistency {'on' if opts['consistency'] else 'off'}")
    return make_engine, summary, batch_size, model


def _user_errors() -> tuple[type[BaseException], ...]:
    from blender_addon.contract.layout import LayoutError
    from farm.keys import CurveKeyError

    from .daemon import DaemonError
    from .images import BackgroundError
    from .models import ModelLoadError, PresetError
    from .prompts import PromptError
    from .runner import RunError

    return (LayoutError, CurveKeyError, BackgroundError, ModelLoadError, PresetError, PromptError, RunError,
            DaemonError)


@click.group(cls=OneLineErrorGroup, user_errors=_user_errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mvcap-studio", message="%(version)s")
def main() -> None:
    """Category-guided captions for multi-view renders (MVCap schema)."""


@main.command("run", epilog=EXIT_CODES)
@click.argument("out", type=click.Path(file_okay=False))
@_model_options
@click.option("--retry-failed", is_flag=True, help="Also re-caption objects whose captions.json records failed images.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's statistics as one JSON line.")
def run_cmd(out: str, as_json: bool, retry_failed: bool, **opts) -> int:
    """Caption every done object in OUT that has no captions.json yet, then write metadata.json.

    An image that fails is recorded in its object's captions.json (caption null, with the error)
    and left out of metadata.json; an object whose images all fail gets no captions.json. Either
    way the run ends with exit code 3 and the reasons; --retry-failed tries those images again.
    """
    from .runner import RunError, pending_tasks, run_out

    if not os.path.isdir(out):
        raise RunError(f"OUT {out!r} is not a folder")
    if not pending_tasks(Path(out).resolve(), retry_failed):
        from farm.metadata import write_metadata

        write_metadata(out)
        _log(f"nothing to caption in {out}; metadata.json rewritten")
        if as_json:
            click.echo(json.dumps({"images": 0, "objects": 0}))
        return 0
    make_engine, summary, _, _ = _engine_factory(opts)
    _log(summary)
    stats = run_out(out, make_engine, retry_failed=retry_failed, log=_log)
    _log(f"done: {stats['captioned']} captioned, {stats['failed']} failed, {stats['forced']} forced prefix, "
         f"{stats['objects']} object(s) in {stats['wall_s']:.1f} s "
         f"(generate {stats['generate_s']:.1f} s, waiting for images {stats['decode_wait_s']:.2f} s)")
    if as_json:
        click.echo(json.dumps(stats))
    return _failure_exit(stats, stats["failures"])


def _failure_exit(stats: dict, failures: list[str]) -> int:
    """0, or EXIT_FAILED with the failed objects and an `error:` line when anything failed."""
    if not stats["failed"] and not stats["failed_objects"]:
        return 0
    for line in failures[:10]:
        _log(f"failed: {line}")
    if len(failures) > 10:
        _log(f"... and {len(failures) - 10} more object(s) with failed images")
    counts = [f"{stats['failed']} of {stats['images']} image(s) failed"] if stats["failed"] else []
    counts += [f"{stats['failed_objects']} object(s) got no caption"] if stats["failed_objects"] else []
    first = failures[0] if failures else "see the log above"
    click.echo(f"error: {', '.join(counts)}; first: {first}", err=True)
    return EXIT_FAILED


@main.command("serve", epilog=EXIT_CODES)
@click.option("--connect", default=DEFAULT_CONNECT, show_default=True, help="The broker's address.")
@_model_options
@click.option("--curve-keys", type=click.Path(file_okay=False), default=None,
              help="CurveZMQ key folder (farm keys DIR): broker.key and <key-name>.key_secret. Without it, "
                   "a local broker of this user is joined with its token.")
@click.option("--key-name", default="client", show_default=True,
              help="Which key pair in --curve-keys to use (give the captioner its own: farm keys DIR --name NAME).")
@click.option("--max-tasks", type=click.IntRange(1), default=None, help="Exit after this many caption tasks.")
@click.option("--idle-exit", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Exit after this long with nothing to caption (default: run until stopped).")
@click.option("--heartbeat", type=click.FloatRange(0.05), default=None, hidden=True,
              help="CAPTION_HEARTBEAT period in seconds (tests use a short one).")
def serve_cmd(connect: str, curve_keys: str | None, key_name: str, max_tasks: int | None,
              idle_exit: float | None, heartbeat: float | None, **opts) -> int:
    """Lease caption tasks from the broker's durable queue, caption them, acknowledge each object.

    It captions the jobs that name its model (farm submit --caption-model, matched by hub id or by
    a folder's absolute path) or none; jobs that ask for another model wait for a captioner that
    runs it. An object whose images all fail is reported failed to the broker with the reason.
    """
    from .daemon import CaptionDaemon, install_signal_handlers

    from blender_addon.contract.peer_auth import PeerAuth

    auth = PeerAuth(connect, curve_keys, key_name)
    make_engine, summary, batch_size, model = _engine_factory(opts)
    _log(f"{summary}; broker {connect}")
    daemon = CaptionDaemon(connect, make_engine, batch_size=batch_size, model=model, auth=auth, max_tasks=max_tasks,
                           idle_exit_s=idle_exit, log=_log,
                           **({"heartbeat_s": heartbeat} if heartbeat is not None else {}))
    install_signal_handlers(daemon)
    stats = daemon.run()
    _log(f"stopped: {stats['acked']} object(s) acknowledged, {stats['reported_failed']} reported failed, "
         f"{stats['captioned']} captioned, {stats['failed']} failed images, {stats['forced']} forced prefix")
    return _failure_exit({**stats, "failed_objects": stats["reported_failed"]}, stats["failures"])


@main.command("presets")
def presets_cmd() -> None:
    """List the presets."""
    for preset in PRESETS.values():
        click.echo(f"{preset.name:8s} {preset.model} (weights: {preset.weights or 'size unknown'})\n"
                   f"         {preset.description}\n         prompt: {preset.prompt}")


if __name__ == "__main__":  # pragma: no cover
    main()
