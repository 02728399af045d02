"""Checks at the door, before the store sees a message: a SUBMIT (types, every path and name,
the output folder under an --out-root, the spec) and a successful RESULT (its result's shape).

Whatever is stored is later read by the broker and by workers, so nothing may get in that a file
system call would choke on (protocol.path_problem, text_problem; identifier_problem for names).
Every SUBMIT problem is a StoreError, sent back as one ERROR line.
"""
from __future__ import annotations

import os

from blender_addon.contract.layout import FARM_DIR, LayoutError, check_identifier
from ..protocol import path_problem, text_problem
from ..store import StoreError

_JOB_FIELD_TYPES = (("name", str), ("priority", int), ("max_attempts", int), ("timeout_s", (int, float)),
                    ("caption", bool), ("caption_model", str), ("views", int), ("options", dict),
                    ("spec", dict), ("spec_hash", str), ("spec_change", str))
_ASSET_FIELDS = ("uid", "path", "category", "source", "out_rel", "category_from")


def check_submit(job: dict, assets: list[dict], out_roots: tuple[str, ...]) -> tuple[dict, list[dict]]:
    """Validate a SUBMIT payload from the network: types, paths, confinement, the spec.
    `out_roots`: real paths of the folders OUT may lie in."""
    check_job(job)
    job = {**job, "out_root": check_out_root(job["out_root"], out_roots)}
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


def check_out_root(out_root: str, out_roots: tuple[str, ...]) -> str:
    """OUT, normalised, when it lies under one of `out_roots` (symbolic links resolved)."""
    problem = path_problem(out_root)
    if problem:
        raise StoreError(f"job.out_root {out_root[:80]!r}: {problem}")
    out_root = os.path.normpath(out_root)
    if not out_roots:
        raise StoreError("this broker takes no output folders: start it with --out-root DIR "
                         "(every OUT must lie under one)")
    real = os.path.realpath(out_root)
    if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in out_roots):
        raise StoreError(f"job.out_root {out_root} is not under this broker's --out-root ({', '.join(out_roots)})")
    return out_root


def check_job(job: dict) -> None:
    out_root = job.get("out_root")
    if not isinstance(out_root, str) or not os.path.isabs(out_root):
        raise StoreError("job.out_root: expected an absolute path")
    for key, tp in _JOB_FIELD_TYPES:
        if job.get(key) is not None and (not isinstance(job[key], tp) or isinstance(job[key], bool) != (tp is bool)):
            raise StoreError(f"job.{key}: wrong type {type(job[key]).__name__}")
    for key in ("name", "caption_model", "spec_hash"):
        problem = job.get(key) is not None and text_problem(job[key])
        if problem:
            raise StoreError(f"job.{key}: {problem}")
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
    for key in ("category", "source", "category_from"):
        if a.get(key) is not None and not isinstance(a[key], str):
            raise StoreError(f"assets[{i}].{key}: expected a string")
    for key in ("uid", "category", "source"):
        problem = a.get(key) is not None and text_problem(a[key])
        if problem:
            raise StoreError(f"assets[{i}].{key}: {problem}")
    problem = path_problem(a["path"])
    if problem:
        raise StoreError(f"assets[{i}].path: {problem}")
    for part in a["out_rel"].split("/"):
        try:
            check_identifier(part, f"assets[{i}].out_rel part")
        except LayoutError as exc:
            raise StoreError(str(exc)) from None
    # every part is a plain name (checked above), so OUT/out_rel stays under OUT; workers and the
    # broker resolve it again with confined_path before writing
    if a["out_rel"].split("/")[0] == FARM_DIR:
        raise StoreError(f"assets[{i}].out_rel {a['out_rel']!r} is not an object folder")


def result_problem(msg: dict) -> str | None:
    """Why a successful RESULT's result cannot be recorded, or None. (Its files are checked where
    they are installed: tasks.py.)"""
    result = msg.get("result")
    if not isinstance(result, dict):
        return "the result is missing"
    views = result.get("views")
    if views is not None and (isinstance(views, bool) or not isinstance(views, (int, list))
                              or isinstance(views, int) and views < 0):
        return "the result's views are neither a count nor a list"
    return None
