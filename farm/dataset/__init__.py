"""`farm dataset`: build, validate, card, gallery and export an OUT folder.

The click group is `farm.dataset.cli.dataset`; the functions behind it are importable:
`build_dataset`, `validate_dataset`, `write_card`, `write_gallery`, `export_dataset`.
"""
from __future__ import annotations

from .build import build_dataset
from .common import DatasetError
from .validate import validate_dataset

__all__ = ["DatasetError", "build_dataset", "validate_dataset"]
