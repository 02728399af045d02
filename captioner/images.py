"""Image decoding on worker threads, so the model never waits on PNG decoding.

RGBA renders (transparent film) are composited onto a solid background before the processor sees
them; the default is white, like the paper's renders as shown to the captioner.
"""
from __future__ import annotations

import collections
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from blender_addon.rig.errors import one_line

_NAMED = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}


class BackgroundError(ValueError):
    """A background colour that cannot be parsed."""


def parse_background(text: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """'white', 'black', 'gray', '#rrggbb' or 'r,g,b' (0-255)."""
    if isinstance(text, tuple):
        return text
    value = str(text).strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        return tuple(int(p) for p in parts)  # type: ignore[return-value]
    raise BackgroundError(f"background: {text!r} is not a colour; use white, black, gray, #rrggbb or r,g,b")


def load_rgb(path: str | Path, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Decode fully (a truncated file raises here, not later) and flatten alpha onto `background`."""
    with Image.open(path) as img:
        img.load()
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        if has_alpha:
            rgba = img.convert("RGBA")
            base = Image.new("RGBA", rgba.size, background + (255,))
            return Image.alpha_composite(base, rgba).convert("RGB")
        return img.convert("RGB")


@dataclass
class Decoded:
    """One prefetched image: `image` on success, `error` (one line) on failure."""

    item: Any
    image: Image.Image | None = None
    error: str | None = None


def _decode(item: Any, path: Path, background: tuple[int, int, int]) -> Decoded:
    try:
        return Decoded(item, image=load_rgb(path, background))
    except Exception as exc:  # any unreadable image is recorded for that image alone
        return Decoded(item, error=f"cannot read image: {one_line(exc)}")


@dataclass
class PrefetchStats:
    wait_s: float = 0.0  # time the consumer was blocked waiting for a decoded image
    decoded: int = 0
    decode_errors: int = 0


class Prefetcher:
    """An ordered decode queue: items go in with `add`, decoded images come out with `take`.

    Up to `depth` images are decoded ahead on `threads` worker threads. `take` blocks only when
    the next image is not decoded yet, and that time is counted in `stats.wait_s`.
    """

    def __init__(self, threads: int = 4, depth: int = 64, background: tuple[int, int, int] = (255, 255, 255)):
        self.depth = max(1, depth)
        self.background = background
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="captioner-decode")
        self._waiting: collections.deque[tuple[Any, Path]] = collections.deque()
        self._inflight: collections.deque[Future] = collections.deque()
        self._lock = threading.Lock()
        self.stats = PrefetchStats()

    def add(self, items: Iterable[tuple[Any, Path]]) -> None:
        with self._lock:
            self._waiting.extend(items)
            self._top_up()

    def _top_up(self) -> None:
        while self._waiting and len(self._inflight) < self.depth:
            item, path = self._waiting.popleft()
            self._inflight.append(self._pool.submit(_decode, item, path, self.background))

    def pending(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._inflight)

    def ready(self) -> int:
        """How many images are decoded and waiting at the head of the queue."""
        with self._lock:
            count = 0
            for fut in self._inflight:
                if not fut.done():
                    break
                count += 1
            return count

    def take(self, n: int) -> list[Decoded]:
        """The next up-to-n decoded images, in order (blocks for the first ones not yet decoded)."""
        out: list[Decoded] = []
        while len(out) < n:
            with self._lock:
                if not self._inflight:
                    break
                fut = self._inflight.popleft()
                self._top_up()
            if not fut.done():
                start = time.perf_counter()
                result = fut.result()
                self.stats.wait_s += time.perf_counter() - start
            else:
                result = fut.result()
            self.stats.decoded += 1
            if result.error:
                self.stats.decode_errors += 1
            out.append(result)
        return out

    def close(self) -> None:
        with self._lock:
            self._waiting.clear()
            for fut in self._inflight:
                fut.cancel()
            self._inflight.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

