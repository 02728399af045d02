"""The `objaverse` source: a local Objaverse cache `<root>/glbs/<shard>/<uid>.glb`, or uid list files
read against it.

- A path that is a folder is a cache root (the folder holding `glbs/`, or `glbs/` itself): every
  GLB in it is an asset.
- A path that is a file is a uid list (one uid a line, `#` comments, blank lines ignored), read
  against the cache roots given beside it, or else the cache that the list file sits in or
  above.
- Categories come from Objaverse-LVIS JSON `{category: [uids]}` or CSV `uid,category`. A uid
  without a category is an error that names it: categories are never guessed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from blender_addon.contract.layout import LayoutError

from .base import Asset, SourceError
from .categories import load_categories
from .folder import FolderSource, views_rel

NAME = "objaverse"


def _cache_glbs_dir(root: Path) -> Path | None:
    """The `glbs/` folder of a cache root (or of `<root>/hf-objaverse-v1/`, the objaverse package's
    layout under ~/.objaverse), or the folder itself when it is `glbs/`."""
    for candidate in (root / "glbs", root / "hf-objaverse-v1" / "glbs"):
        if candidate.is_dir():
            return candidate
    if root.name == "glbs" and root.is_dir():
        return root
    return None


def index_cache(root: str | os.PathLike) -> dict[str, Path]:
    """uid -> absolute GLB path for one cache root. Raises SourceError on a bad root or a clash."""
    root = Path(root)
    glbs = _cache_glbs_dir(root)
    if glbs is None:
        raise SourceError(f"objaverse: {root} is not an Objaverse cache (expected {root}/glbs/<shard>/<uid>.glb)")
    index: dict[str, Path] = {}
    for shard in sorted(p for p in glbs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for glb in sorted(shard.iterdir()):
            if glb.suffix.lower() != ".glb" or not glb.is_file() or glb.name.startswith("."):
                continue
            uid = glb.stem
            if uid in index:
                raise SourceError(f"objaverse: uid {uid!r} appears twice: {index[uid]} and {glb.resolve()}")
            index[uid] = glb.resolve()
    return index


def _find_cache_for(list_file: Path) -> Path | None:
    return next((p for p in list_file.resolve().parents if _cache_glbs_dir(p) is not None), None)


def read_uid_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"objaverse: uid list {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    uids = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            uids.append(line.split(",", 1)[0].strip())  # tolerate `uid,category` rows
    return uids


def objaverse_assets(paths: Iterable[str | os.PathLike], categories: dict[str, str] | None) -> list[Asset]:
    """Assets for the cache roots and uid lists in `paths`, sorted by uid."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise SourceError(f"objaverse: {p}: no such file or folder")
    roots = [p for p in paths if p.is_dir()]
    lists = [p for p in paths if p.is_file()]
    if categories is None:
        raise SourceError("objaverse: --categories is required (Objaverse-LVIS JSON or CSV uid,category)")

    index: dict[str, Path] = {}
    for root in roots:
        for uid, path in index_cache(root).items():
            if uid in index and index[uid] != path:
                raise SourceError(f"objaverse: uid {uid!r} appears twice: {index[uid]} and {path}")
            index[uid] = path

    if lists:
        wanted: list[str] = []
        for list_file in lists:
            if not roots:
                cache = _find_cache_for(list_file)
                if cache is None:
                    raise SourceError(f"objaverse: uid list {list_file} needs a cache root beside it (a folder holding glbs/)")
                index.update({u: p for u, p in index_cache(cache).items() if u not in index})
            wanted.extend(read_uid_list(list_file))
        missing = [u for u in dict.fromkeys(wanted) if u not in index]
        if missing:
            raise SourceError(f"objaverse: {len(missing)} listed uid(s) are not in the cache: {_first(missing)}")
        selected = sorted(set(wanted))
    else:
        selected = sorted(index)

    uncategorized = [u for u in selected if not categories.get(u)]
    if uncategorized:
        raise SourceError(
            f"objaverse: {len(uncategorized)} of {len(selected)} uid(s) have no category in --categories "
            f"(categories are never guessed): {_first(uncategorized)}"
        )
    assets = []
    for uid in selected:
        try:
            out_rel = views_rel(uid)
        except LayoutError as exc:
            raise SourceError(f"objaverse: {exc}") from None
        assets.append(Asset(uid=uid, path=str(index[uid]), category=categories[uid], source=NAME, out_rel=out_rel))
    return assets


def _first(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


class ObjaverseSource(FolderSource):
    """Objaverse objects go where the folder source puts any 3D asset (views/<uid>/); a finished
    views/ folder on disk is found once, as the folder source's."""

    name = NAME
    structure = ""  # the folder source's views/ line covers it

    def assets(self, paths: list[str], categories_path: str | None) -> list[Asset]:
        return objaverse_assets(paths, load_categories(categories_path))

    def object_folders(self, out: Path) -> list[Path]:
        return []


SOURCE = ObjaverseSource()

__all__ = ["objaverse_assets", "index_cache", "read_uid_list", "SOURCE"]
