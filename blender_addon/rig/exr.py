"""A small OpenEXR reader and writer in numpy: scanline images, NONE/ZIPS/ZIP compression.

Enough for the render passes: Blender writes each view's passes as a multilayer EXR (single-part
up to 4.x, multi-part in 5.0; scene/passes.py asks for no compression) and the pass files are
float32 EXRs. Written here rather than taken from the `OpenEXR` package because that package's
bundled libraries crash inside a Blender linked against another OpenEXR (Debian's 3.4), and a
render child is such a process. Layout: openexr.com, "OpenEXR File Layout".
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = 20000630
MULTIPART, TILED, DEEP = 0x1000, 0x200, 0x800
NONE, ZIPS, ZIP = 0, 2, 3
LINES_PER_BLOCK = {NONE: 1, ZIPS: 1, ZIP: 16}
PIXEL_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


class ExrError(ValueError):
    """An EXR this module cannot read; the message is one line."""


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("latin-1"), end + 1


def _channels(value: bytes) -> list[tuple[str, int]]:
    channels, pos = [], 0
    while value[pos:pos + 1] != b"\0":
        name, pos = _cstring(value, pos)
        pixel_type, _linear, x_sampling, y_sampling = struct.unpack_from("<iB3xii", value, pos)
        if (x_sampling, y_sampling) != (1, 1):
            raise ExrError(f"channel {name!r} is subsampled")
        channels.append((name, pixel_type))
        pos += 16
    return sorted(channels)


def _header(data: bytes, pos: int) -> tuple[dict, int]:
    header = {}
    while data[pos:pos + 1] != b"\0":
        name, pos = _cstring(data, pos)
        _type, pos = _cstring(data, pos)
        (size,) = struct.unpack_from("<i", data, pos)
        header[name] = data[pos + 4:pos + 4 + size]
        pos += 4 + size
    return header, pos + 1


def _decompress(block: bytes, compression: int, raw_size: int) -> bytes:
    if compression == NONE or len(block) == raw_size:  # EXR stores a block raw when it does not shrink
        return block
    if compression not in (ZIPS, ZIP):
        raise ExrError(f"compression {compression} is not supported (NONE, ZIPS, ZIP are)")
    t = np.frombuffer(zlib.decompress(block), np.uint8).astype(np.int16)
    t = (np.cumsum(t - 128, dtype=np.int64) + 128) & 0xFF  # undo the predictor (first byte is kept as is)
    t = t.astype(np.uint8)
    half = (len(t) + 1) // 2
    out = np.empty(len(t), np.uint8)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def read(path: str | Path) -> dict[str, np.ndarray]:
    """Every channel of every part: {name: float32 (H, W)}."""
    data = Path(path).read_bytes()
    magic, version = struct.unpack_from("<ii", data, 0) if len(data) >= 8 else (0, 0)
    if magic != MAGIC:
        raise ExrError(f"{Path(path).name}: not an OpenEXR file")
    if version & (TILED | DEEP):
        raise ExrError(f"{Path(path).name}: tiled or deep EXR is not supported")
    headers, pos = [], 8
    while True:
        header, pos = _header(data, pos)
        headers.append(header)
        if not version & MULTIPART or data[pos:pos + 1] == b"\0":
            break
    pos += 1 if version & MULTIPART else 0  # the empty header that ends a multi-part list
    tables = []  # each part's chunk offsets, one table after another
    for header in headers:
        _, ymin, _, ymax = struct.unpack("<4i", header["dataWindow"])
        lines = LINES_PER_BLOCK.get(header["compression"][0], 0)
        if not lines:
            raise ExrError(f"{Path(path).name}: compression {header['compression'][0]} is not supported")
        count = -(-(ymax - ymin + 1) // lines)
        tables.append(struct.unpack_from(f"<{count}Q", data, pos))
        pos += 8 * count
    channels: dict[str, np.ndarray] = {}
    for header, offsets in zip(headers, tables):  # a multi-part chunk starts with its part number
        channels.update(_read_part(data, header, offsets, 4 if version & MULTIPART else 0))
    return channels


def _read_part(data: bytes, header: dict, offsets, skip: int) -> dict[str, np.ndarray]:
    xmin, ymin, xmax, ymax = struct.unpack("<4i", header["dataWindow"])
    width, height = xmax - xmin + 1, ymax - ymin + 1
    compression = header["compression"][0]
    channels = _channels(header["channels"])
    out = {name: np.empty((height, width), np.float32) for name, _ in channels}
    row_bytes = sum(PIXEL_DTYPES[t].itemsize for _, t in channels) * width
    for offset in offsets:
        y, size = struct.unpack_from("<ii", data, offset + skip)
        lines = min(LINES_PER_BLOCK[compression], ymax - y + 1)
        raw = _decompress(data[offset + skip + 8:offset + skip + 8 + size], compression, row_bytes * lines)
        pos = 0
        for line in range(y - ymin, y - ymin + lines):
            for name, pixel_type in channels:
                dtype = PIXEL_DTYPES[pixel_type]
                out[name][line] = np.frombuffer(raw, dtype, width, pos)
                pos += dtype.itemsize * width
    return out


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _compress(raw: bytes) -> bytes:
    b = np.frombuffer(raw, np.uint8)
    t = np.concatenate([b[0::2], b[1::2]]).astype(np.int16)
    t[1:] = (np.diff(t) + 128) & 0xFF
    packed = zlib.compress(t.astype(np.uint8).tobytes(), 4)
    return packed if len(packed) < len(raw) else raw


def write(path: str | Path, channels: dict[str, np.ndarray]) -> None:
    """A single-part float32 scanline EXR with ZIP compression; every channel (H, W)."""
    names = sorted(channels)
    height, width = np.shape(channels[names[0]])
    pixels = {n: np.ascontiguousarray(channels[n], dtype="<f4") for n in names}
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = b"".join([
        _attribute("channels", "chlist", chlist), _attribute("compression", "compression", bytes([ZIP])),
        _attribute("dataWindow", "box2i", window), _attribute("displayWindow", "box2i", window),
        _attribute("lineOrder", "lineOrder", b"\0"), _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"
    blocks = []
    for y in range(0, height, LINES_PER_BLOCK[ZIP]):
        rows = slice(y, min(y + LINES_PER_BLOCK[ZIP], height))
        raw = b"".join(pixels[n][line].tobytes() for line in range(rows.start, rows.stop) for n in names)
        packed = _compress(raw)
        blocks.append(struct.pack("<ii", y, len(packed)) + packed)
    start = 8 + len(header) + 8 * len(blocks)
    offsets, pos = [], start
    for block in blocks:
        offsets.append(pos)
        pos += len(block)
    Path(path).write_bytes(struct.pack("<ii", MAGIC, 2) + header + struct.pack(f"<{len(offsets)}Q", *offsets)
                           + b"".join(blocks))
