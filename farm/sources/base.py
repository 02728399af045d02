"""What a source is (the Source interface) and what it produces (Assets).

A source declares everything the farm and the dataset tools ask of it; farm/sources/registry.py
finds it by name. The defaults are those of a source whose assets are rendered (folder, objaverse,
im3d): a `render` task with the job's spec, transforms.json as the completion marker, and the
spec's provenance on the dataset card.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from blender_addon.contract.layout import TRANSFORMS_JSON

RENDER = "render"  # the task kind that renders an asset with the job's spec (bpy, worker_child)
SPEC_PROVENANCE = ("Spec hash (from transforms.json)", "Spec name", "Seed")  # the card always shows these


class SourceError(ValueError):
    """Bad source input (missing root, unreadable category file). One line, shown without traceback."""


@dataclass(frozen=True)
class Asset:
    uid: str
    path: str  # absolute path of the asset (a mesh file, or a folder for sources that read folders)
    category: str | None
    source: str  # the Source's name
    out_rel: str  # output folder relative to OUT, e.g. "views/<uid>"
    category_from: str | None = None  # "folder": no --categories entry, the parent folder's name was taken

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FoundObject:
    """A finished object folder on disk (`farm dataset build` adds those objects.jsonl lacks)."""
    folder: Path
    uid: str
    category: str | None
    views: int
    asset: str = ""


class Source:
    """One `--source`. Subclass it, set the class attributes, implement `assets` and
    `expected_out_rel`, and override the rest where the source differs from a rendered one."""

    name: str = ""  # the --source value, and `source` in every Asset and objects.jsonl record
    task_kind: str = RENDER  # RENDER, or a kind of its own that `run_task` does
    marker: str = TRANSFORMS_JSON  # written last into an object folder: its presence means done
    structure: str = ""  # the dataset card's line about this source's folders ("" for none)
    task_options: tuple[str, ...] = ()  # job options its task reads (resolve_assets accepts them)

    @property
    def needs_spec(self) -> bool:
        """A render task carries the job's spec; a task of another kind gets none."""
        return self.task_kind == RENDER

    def assets(self, paths: list[str], categories_path: str | None) -> list[Asset]:
        """The assets under `paths`, in a deterministic order. SourceError (one line) on bad input."""
        raise NotImplementedError

    def expected_out_rel(self, record: dict) -> str:
        """Where the layout puts an objects.jsonl record of this source (the same rule `assets`
        uses). Raises ValueError (LayoutError, SourceError) when the record cannot say."""
        raise NotImplementedError

    def views_per_object(self, spec_views: int, views: int | None) -> int:
        """Images per object for the progress display: the spec's views for a render."""
        return spec_views

    def object_folders(self, out: Path) -> Iterable[Path]:
        """The folders in OUT where this source's objects would be (done when `marker` is there).
        A source that shares another's folders (objaverse: views/) leaves them to that one."""
        return []

    def found_object(self, folder: Path, marker: dict) -> FoundObject:
        """What a finished folder, read by its marker, tells of its object."""
        return FoundObject(folder, folder.name, None, len(marker.get("frames") or []))

    def provenance(self, marker: dict) -> dict[str, str]:
        """Dataset card lines (label -> value) from one finished object's marker file."""
        return {
            SPEC_PROVENANCE[0]: str(marker.get("spec_hash") or "not recorded"),
            SPEC_PROVENANCE[1]: str(marker.get("spec_name") or "not recorded"),
            SPEC_PROVENANCE[2]: str(marker.get("seed", "not recorded")),
        }

    def run_task(self, asset: dict, out_dir: str, options: dict, progress: Callable[[int, int], None]) -> dict:
        """Make one object's folder in the render child, for a task kind other than RENDER.
        Returns a dict shaped like RenderResult.to_dict(); raises AssetError (one line)."""
        raise NotImplementedError(f"source {self.name!r} has no task of its own")


def subdirs(folder: Path) -> list[Path]:
    """The visible subfolders of `folder`, sorted; [] when it is not a folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
