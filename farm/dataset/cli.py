"""The `farm dataset` click group: build, validate, card, gallery, export.

Exit codes: 0 on success; 1 when `validate` finds violations (done objects without captions are
one, unless --allow-uncaptioned); 2 for bad usage or input (one line, `error: ...`, no traceback:
farm.cli_errors, the same path as `farm` and `captioner`). What the user should know besides
(done objects without captions, quality flags, folder-name categories) is printed as `warning:`
lines on stderr.
"""
from __future__ import annotations

import click

from ..cli_errors import OneLineErrorGroup
from .common import DatasetError

OUT_ARG = click.argument("out", type=click.Path(file_okay=False, dir_okay=True))


def _user_errors() -> tuple[type[BaseException], ...]:
    return (DatasetError, OSError)


def _warn(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


@click.group("dataset", cls=OneLineErrorGroup, user_errors=_user_errors)
def dataset() -> None:
    """Assemble, check, describe, browse and export a dataset folder (OUT)."""


@dataset.command("build", short_help="Assemble metadata.json from objects.jsonl over every source.")
@OUT_ARG
def build_cmd(out: str) -> None:
    """Assemble OUT/metadata.json from everything objects.jsonl lists as done, over every source,
    atomically. obj_ids come from the farm alone: objects.jsonl is never rewritten, finished
    folders it does not list are reported and left out, and img_ids use the stride it records."""
    from .build import build_dataset

    report = build_dataset(out)
    click.echo(report.summary())
    _warn(report.notes)


@dataset.command("validate", short_help="Check OUT and name every violation (exit 1 on any).")
@OUT_ARG
@click.option("--skip-files", is_flag=True, help="Do not check that each metadata.json path exists on disk.")
@click.option("--no-caption-check", is_flag=True, help="Do not check that each caption names its category.")
@click.option("--max-errors", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Print at most this many violations (0: all); all are counted.")
@click.option("--allow-uncaptioned", is_flag=True,
              help="Done objects without captions (not captioned yet, or every image failed) are a warning, "
                   "not a violation (default: a violation, exit 1).")
def validate_cmd(out: str, skip_files: bool, no_caption_check: bool, max_errors: int, allow_uncaptioned: bool) -> int:
    """Check schema, files, ids and category consistency; name every violation; exit 1 on any.

    Done objects without captions are a violation unless --allow-uncaptioned. Views with quality
    flags (clipped, out_of_frame, blank) and categories taken from a folder name are counted in
    `warning:` lines; they are no violation.
    """
    from .validate import validate_dataset

    report = validate_dataset(out, check_files=not skip_files, check_captions=not no_caption_check,
                              max_kept=max_errors, allow_uncaptioned=allow_uncaptioned)
    for line in report.kept:
        click.echo(line)
    if len(report.kept) < report.count:
        click.echo(f"... {report.count - len(report.kept)} more violation(s) not shown (--max-errors 0 shows all)")
    _warn(report.notes)
    click.echo(f"validate: {report.summary()}", err=not report.ok)
    return 0 if report.ok else 1


@dataset.command("card", short_help="Write OUT/README.md, a dataset card with provenance.")
@OUT_ARG
def card_cmd(out: str) -> None:
    """Write OUT/README.md: a Hugging Face style dataset card with provenance."""
    from .card import write_card

    click.echo(f"wrote {write_card(out)}")


@dataset.command("gallery", short_help="Write OUT/gallery/index.html with a contact sheet per object.")
@OUT_ARG
@click.option("--thumb", type=click.IntRange(16, 1024), default=128, show_default=True, help="Thumbnail size in px.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N objects (by obj_id).")
def gallery_cmd(out: str, thumb: int, limit: int | None) -> None:
    """Write OUT/gallery/index.html: a contact sheet per object with its captions, filterable."""
    from .gallery import write_gallery

    click.echo(f"wrote {write_gallery(out, thumb=thumb, limit=limit)}")


@dataset.command("export", short_help="Export OUT as WebDataset tar shards or a Hugging Face imagefolder.")
@OUT_ARG
@click.option("--format", "fmt", type=click.Choice(["hf", "webdataset"]), default="hf", show_default=True,
              help="hf: a Hugging Face imagefolder with metadata.jsonl; webdataset: size-capped tar shards "
                   "(<key>.png|jpg, .txt caption, .json ids, pose and intrinsics) and shards.json.")
@click.option("-o", "--dest", default=None, metavar="DIR",
              help="The export folder (default: OUT/<format>). A relative path is inside OUT; webdataset "
                   "also takes an absolute path anywhere.")
@click.option("--shard-size", default="1GB", show_default=True, metavar="BYTES",
              help="webdataset: the most bytes per shard (e.g. 500MB, 1GB, 1000000).")
@click.option("--shuffle-seed", type=int, default=None,
              help="webdataset: a fixed random sample order (spreads one object's views across shards); "
                   "default: metadata.json's order.")
@click.option("--no-progress", is_flag=True, help="No progress bar (default: a bar on a terminal).")
def export_cmd(out: str, fmt: str, dest: str | None, shard_size: str, shuffle_seed: int | None,
               no_progress: bool) -> None:
    """Export OUT for training code or other tools.

    webdataset: `webdataset.WebDataset("DEST/shard-{000000..000009}.tar")`; a rerun after a kill
    resumes, writing only the shards not yet finished. hf:
    `datasets.load_dataset("imagefolder", data_dir=OUT/hf)`.
    """
    import sys

    from .export import export_dataset, parse_size

    folder, count = export_dataset(out, fmt, dest, shard_size=parse_size(shard_size, "--shard-size"),
                                   shuffle_seed=shuffle_seed, progress=not no_progress and sys.stderr.isatty())
    click.echo(f"exported {count} images to {folder}")
    _warn(_uncaptioned(out))


def _uncaptioned(out: str) -> list[str]:
    """The note on done objects that have no record in metadata.json (so none in an export)."""
    from pathlib import Path

    from .common import load_objects
    from .flags import metadata_obj_ids, uncaptioned_in_metadata, uncaptioned_line

    line = uncaptioned_line(*uncaptioned_in_metadata(load_objects(Path(out)), metadata_obj_ids(Path(out))), out)
    return [line] if line else []


if __name__ == "__main__":  # python -m farm.dataset.cli
    dataset()
