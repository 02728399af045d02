"""What an object was rendered with: its render key, and how two of them differ.

The key is a hash of what changes an object's files: for a rendered source the spec, less the
fields that change neither pixels nor poses (name, description, reproduces, render.timeout_s);
for a source with a task of its own (mvimgnet) the job options that task reads. The device, the
timeout and the attempt budget are not part of it. Each object records the key of the views on
disk; a rerun with another key is refused unless it says how to go on (`--rerender`,
`--add-views`). The key's body (the dict hashed) is kept too, so the fields can be named.
"""
from __future__ import annotations

import hashlib
import json

from ..sources import RENDER, source_of, task_kind_of
from .schema import ADD_VIEWS, RERENDER, StoreError

NOT_OUTPUT = ("name", "description", "reproduces")  # top-level spec fields that change no file
NOT_OUTPUT_RENDER = ("timeout_s",)
REFUSE = "refuse"  # a job's `spec_change` by default; or RERENDER, ADD_VIEWS
SPEC_CHANGES = (REFUSE, RERENDER, ADD_VIEWS)
UNSET = "(unset)"


def key_body(job: dict, source: str | None) -> dict:
    """What an object of `source` gets its files from in this job."""
    if task_kind_of(source) == RENDER:
        spec = job.get("spec")
        if spec is None:
            return {"spec": None}
        spec = {k: v for k, v in spec.items() if k not in NOT_OUTPUT}
        spec["render"] = {k: v for k, v in (spec.get("render") or {}).items() if k not in NOT_OUTPUT_RENDER}
        return {"spec": spec}
    read = source_of(source).task_options
    return {"options": {k: v for k, v in sorted((job.get("options") or {}).items()) if k in read}}


def key_of(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def _leaves(value, prefix: str = "") -> dict[str, object]:
    """A nested dict flattened to dotted field names (lists stay whole)."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, object] = {}
    for k, v in value.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def changed_fields(old: dict, new: dict) -> dict[str, tuple[object, object]]:
    """field -> (old value, new value) for every field that differs (the body's top key dropped:
    `camera.num_views`, `options.frames`)."""
    a, b = _leaves(old), _leaves(new)
    changed = {}
    for name in sorted(set(a) | set(b)):
        if a.get(name, UNSET) != b.get(name, UNSET):
            shown = name.split(".", 1)[1] if name.startswith("spec.") else name
            changed[shown] = (a.get(name, UNSET), b.get(name, UNSET))
    return changed


def describe(changed: dict[str, tuple[object, object]], limit: int = 6) -> str:
    """`camera.num_views 8 -> 16, render.resolution_x 128 -> 256` (at most `limit` fields)."""
    parts = [f"{name} {_short(a)} -> {_short(b)}" for name, (a, b) in list(changed.items())[:limit]]
    if len(changed) > limit:
        parts.append(f"and {len(changed) - limit} more")
    return ", ".join(parts) or "no field (only the spec's hash)"


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def view_count(body: dict) -> int:
    """Views per object under a rendered key body (0 when it has no spec)."""
    from blender_addon.rig.spec import spec_from_dict

    spec = body.get("spec")
    return spec_from_dict(spec).view_count if spec else 0


def add_views_problem(old: dict, new: dict) -> str | None:
    """Why `new` cannot be reached from views rendered under `old` by rendering only new views;
    None when it can (same spec, more views of a prefix-stable pattern)."""
    from blender_addon.rig.patterns import is_prefix_stable

    if not (old.get("spec") and new.get("spec")):
        return "only a rendered source's views can be added to"
    changed = changed_fields(old, new)
    others = {k: v for k, v in changed.items() if k != "camera.num_views"}
    if others:
        return f"more than the view count changes ({describe(others)})"
    pattern = new["spec"]["camera"]["pattern"]
    if not is_prefix_stable(pattern):
        return f"the {pattern} pattern spreads its views over all of them, so view k moves when the count changes"
    if view_count(new) <= view_count(old):
        return f"camera.num_views {view_count(old)} -> {view_count(new)} adds no view"
    return None


def check_spec_change(value) -> str:
    if value is None:
        return REFUSE
    if value not in SPEC_CHANGES:
        raise StoreError(f"job.spec_change: {value!r} is not one of {', '.join(SPEC_CHANGES)}")
    return value
