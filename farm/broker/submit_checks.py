"""Checks on a SUBMIT from the network before the store sees it: types, confinement, the spec.

Every problem is a StoreError, sent back to the client as one ERROR line.
"""
from __future__ import annotations

import os

from blender_addon.contract.layout import FARM_DIR, LayoutError, check_identifier
from ..store import StoreError

_JOB_FIELD_TYPES = (("name", str), ("priority", int), ("max_attempts", int), ("timeout_s", (int, float)),
                    ("caption", bool), ("caption_model", str), ("views", int), ("options", dict),
                    ("spec", dict), ("spec_hash", str))
_ASSET_FIELDS = ("uid", "path", "category", "source", "out_rel")


def check_submit(job: dict, assets: list[dict]) -> tuple[dict, list[dict]]:
    """Validate a SUBMIT payload from the network: types, confinement, the spec."""
    check_job(job)
    if job.get("spec") is not None:
        job = with_checked_spec(job)
    seen: set[str] = set()
    clean = []
    for i, a in enumerate(assets):
        check_asset(i, a)
        if a["out_rel"] in seen:
            raise StoreError(f"assets[{i}]: {a['out_rel']!r} appears twice")
        seen.add(a["out_rel"])
        clean.append({k: a.get(k) for k in _ASSET_FIELDS})
    return job, clean


def check_job(job: dict) -> None:
    out_root = job.get("out_root")
    if not isinstance(out_root, str) or not os.path.isabs(out_root):
        raise StoreError("job.out_root: expected an absolute path")
    for key, tp in _JOB_FIELD_TYPES:
        if job.get(key) is not None and (not isinstance(job[key], tp) or isinstance(job[key], bool) != (tp is bool)):
            raise StoreError(f"job.{key}: wrong type {type(job[key]).__name__}")
    if job.get("max_attempts") is not None and not 1 <= job["max_attempts"] <= 100:
        raise StoreError("job.max_attempts: must be 1..100")
    if job.get("timeout_s") is not None and not 0 < job["timeout_s"] <= 7 * 86400:
        raise StoreError("job.timeout_s: must be > 0 and at most a week")


def with_checked_spec(job: dict) -> dict:
    """The job with its spec parsed and normalised, its view count and hash, and the spec's
    timeout when the job gives none."""
    from blender_addon.rig.spec import SpecError, spec_from_dict

    try:
        spec = spec_from_dict(job["spec"])
    except SpecError as exc:
        raise StoreError(f"spec: {exc}") from None
    job = {**job, "spec": spec.to_dict(), "views": spec.view_count, "spec_hash": spec.spec_hash()}
    if job.get("timeout_s") is None:
        job["timeout_s"] = spec.render.timeout_s
    return job


def check_asset(i: int, a: dict) -> None:
    for key in ("uid", "path", "out_rel"):
        if not isinstance(a.get(key), str) or not a[key]:
            raise StoreError(f"assets[{i}].{key}: expected a string")
    for key in ("category", "source"):
        if a.get(key) is not None and not isinstance(a[key], str):
            raise StoreError(f"assets[{i}].{key}: expected a string")
    for part in a["out_rel"].split("/"):
        try:
            check_identifier(part, f"assets[{i}].out_rel part")
        except LayoutError as exc:
            raise StoreError(str(exc)) from None
    # every part is a plain name (checked above), so OUT/out_rel stays under OUT; workers and the
    # broker resolve it again with confined_path before writing
    if a["out_rel"].split("/")[0] == FARM_DIR:
        raise StoreError(f"assets[{i}].out_rel {a['out_rel']!r} is not an object folder")
