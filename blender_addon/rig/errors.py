"""User-facing errors are one line: shared by the farm, the captioner and the add-on."""
from __future__ import annotations


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an error (or text), shortened to `limit` characters."""
    text = error if isinstance(error, str) else str(error)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else ("" if isinstance(error, str) else type(error).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
