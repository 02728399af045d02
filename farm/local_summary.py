"""The end of `farm render`: the summary on the terminal and the exit code.

Everything the user must act on is said here, once: objects that failed (with reasons), views the
render flagged (farm.dataset.flags), categories taken from a folder name, captions that failed or
could not be made (with the captioner's own reason), and what to run next.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .dataset.flags import folder_category_line, quality_counts

EXIT_OK, EXIT_USAGE, EXIT_FAILURES, EXIT_NO_CAPTIONS, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
EXIT_ENVIRONMENT = 5  # stopped by the machine: a full disk, too many open files (farm/environment.py)
EXIT_CODES = ("Exit codes: 0 every object done (and captioned, with --caption); 2 bad usage or input; "
              "3 finished, but some objects failed to render or to caption (the reasons are printed; render "
              "failures are also in objects.jsonl); 4 rendered, but captioning could not run: the captioner "
              "stopped (its reason is printed; run `captioner run OUT` once it can), this wins over 3; 5 stopped by the machine (a full "
              "disk: one line says what; make room and run the same command again to resume); 130 interrupted "
              "(run the same command again to resume).")
FAILURES_SHOWN = 10


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def last_error_line(log: Path, offset: int = 0) -> str | None:
    """The captioner's reason: the last `error: ...` line its log got after `offset` (else its
    last line, e.g. a traceback's), without the `error: ` prefix."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    return lines[-1] if lines else None


def summarize(out: Path, job: dict, submitted: dict, elapsed: float, objects: list[dict], *,
              caption: bool, captioner_error: str | None) -> int:
    """Print the summary of a finished run over `objects` (this run's objects.jsonl records) and
    return the exit code."""
    render, caps = job["render"], job["caption_tasks"]
    done = render.get("done", 0) + submitted["skipped"]
    failed = render.get("failed", 0) + render.get("canceled", 0)
    views = job["views_done"]
    rate = views / elapsed if elapsed > 0 else 0.0
    flags = quality_counts(objects)
    flagged = f", {len(flags.flagged)} with quality flags" if flags.flagged else ""
    say(f"farm render: {done} of {submitted['objects']} objects done{flagged}, {failed} failed, "
        f"{views} views rendered in {elapsed:.1f}s ({rate:.2f} views/s) -> {out}")
    _failed_objects(out, objects)
    for line in (flags.line(), folder_category_line(objects)):
        if line:
            say(f"  {line}")
    if flags.flagged:
        say("  (the views are kept; `--quality fail` fails such objects instead; see `quality` in objects.jsonl)")
    if not caption:
        return EXIT_FAILURES if failed else EXIT_OK
    return _captions(out, caps, job.get("failures") or [], captioner_error, failed)


def _failed_objects(out: Path, objects: list[dict]) -> None:
    fails = [o for o in objects if o.get("status") == "failed"]
    for o in fails[:FAILURES_SHOWN]:
        say(f"  failed: {o['uid']} (obj_id {o['obj_id']}): {o.get('error')}")
    if len(fails) > FAILURES_SHOWN:
        say(f"  ... and {len(fails) - FAILURES_SHOWN} more in {out / 'objects.jsonl'}")


def _captions(out: Path, caps: dict, failures: list[dict], captioner_error: str | None, render_failed: int) -> int:
    cap_failed = caps.get("failed", 0)
    cap_pending = caps.get("queued", 0) + caps.get("leased", 0)
    say(f"captions: {caps.get('done', 0)} objects captioned, {cap_failed} failed, {cap_pending} pending")
    shown = [f for f in failures if f.get("queue") == "caption"][:FAILURES_SHOWN]
    for f in shown:
        say(f"  captioning failed: {f['uid']} (obj_id {f['obj_id']}): {f.get('error')}")
    if cap_pending:
        reason = captioner_error or "the captioner stopped"
        say(f"error: captioning could not run: {reason}; the renders are kept: run `captioner run {out}` "
            f"once the captioner can start (see {out / '.farm' / 'logs' / 'captioner.log'})")
        return EXIT_NO_CAPTIONS
    return EXIT_FAILURES if (render_failed or cap_failed) else EXIT_OK
