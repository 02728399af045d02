"""What every source produces: assets with a uid, a path, a category and an output folder."""
from __future__ import annotations

from dataclasses import asdict, dataclass


class SourceError(ValueError):
    """Bad source input (missing root, unreadable category file). One line, shown without traceback."""


@dataclass(frozen=True)
class Asset:
    uid: str
    path: str  # absolute path of the mesh file (or, for mvimgnet, of the sequence folder)
    category: str | None
    source: str  # folder | objaverse | im3d | mvimgnet
    out_rel: str  # output folder relative to OUT, e.g. "views/<uid>"

    def to_dict(self) -> dict:
        return asdict(self)
