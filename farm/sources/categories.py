"""Category files: CSV `uid,category` or Objaverse-LVIS JSON `{category: [uids]}`."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .base import SourceError


def load_categories(path: str | os.PathLike | None) -> dict[str, str] | None:
    """uid -> category (None without a file: --categories not given). Raises SourceError with a
    one-line reason."""
    if not path:
        return None
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"--categories {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(f"--categories {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise SourceError(f"--categories {path}: expected LVIS JSON {{category: [uids]}}")
        mapping: dict[str, str] = {}
        for category, uids in data.items():
            for uid in uids:
                mapping[str(uid)] = str(category)
        return mapping
    mapping = {}
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise SourceError(f"--categories {path}: line {lineno} is not 'uid,category'")
        uid, category = row[0].strip(), row[1].strip()
        if lineno == 1 and uid.lower() == "uid":
            continue  # header
        mapping[uid] = category
    return mapping
