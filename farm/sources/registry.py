"""The source registry: every `--source` name, and the Source the farm and the dataset tools ask.

The built-in sources are this package's modules. A plugin adds one through the `mvcap.sources`
entry-point group, its value a Source instance (or class):

    [mvcap.sources]
    toy = toy_module:SOURCE

Plugin names are read from the entry points without importing anything; a plugin is imported on
first use, in whichever process asks (CLI, broker, worker, render child). A plugin cannot replace
a built-in source.
"""
from __future__ import annotations

import functools
import logging
from importlib import metadata

from . import folder, im3d, mvimgnet, objaverse
from .base import RENDER, Source, SourceError

ENTRY_POINT_GROUP = "mvcap.sources"
BUILTIN: tuple[Source, ...] = (folder.SOURCE, objaverse.SOURCE, im3d.SOURCE, mvimgnet.SOURCE)

log = logging.getLogger("farm.sources")


@functools.lru_cache(maxsize=None)
def _plugin_entry_points() -> dict[str, metadata.EntryPoint]:
    builtin = {s.name for s in BUILTIN}
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name not in builtin}


def source_names() -> list[str]:
    """The built-in sources, then the plugins' (sorted)."""
    return [s.name for s in BUILTIN] + sorted(_plugin_entry_points())


@functools.lru_cache(maxsize=None)
def get_source(name: str) -> Source:
    """The source called `name`. SourceError (one line) when there is none or it cannot load."""
    for source in BUILTIN:
        if source.name == name:
            return source
    ep = _plugin_entry_points().get(name) if isinstance(name, str) else None
    if ep is None:
        raise SourceError(f"--source: {name!r} is unknown; allowed: {', '.join(source_names())}")
    try:
        source = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import error of a plugin is its one-line reason
        raise SourceError(f"source plugin {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from None
    if isinstance(source, type) and issubclass(source, Source):
        source = source()
    if not isinstance(source, Source) or source.name != ep.name:
        raise SourceError(f"source plugin {ep.name!r} ({ep.value}) is not a Source named {ep.name!r}")
    return source


def all_sources() -> list[Source]:
    """Every source that loads; a plugin that does not is logged and left out."""
    found = []
    for name in source_names():
        try:
            found.append(get_source(name))
        except SourceError as exc:
            log.warning("%s", exc)
    return found


RENDERED = Source()  # what a record with a source name no source has is taken for


def source_of(source_name: str | None) -> Source:
    """The source of an objects.jsonl record or a submitted asset; for a name no source has, a
    rendered source's defaults (such an asset is rendered, its folder read for transforms.json)."""
    return get_source(source_name) if source_name in source_names() else RENDERED


def task_kind_of(source_name: str | None) -> str:
    """The task kind that makes an object of this source."""
    return source_of(source_name).task_kind


def task_kinds() -> list[str]:
    """Every task kind a worker does: RENDER and each source's own."""
    return list(dict.fromkeys([RENDER] + [s.task_kind for s in all_sources()]))


def task_source(kind: str) -> Source:
    """The source whose `run_task` does tasks of `kind` (any kind but RENDER)."""
    for source in all_sources():
        if kind != RENDER and source.task_kind == kind:
            return source
    raise SourceError(f"unknown task kind {kind!r}")
