"""Asset sources: each turns a root (or list) into Assets."""
from .base import Asset, SourceError
from .categories import load_categories
from .folder import folder_assets

__all__ = ["Asset", "SourceError", "load_categories", "folder_assets"]
