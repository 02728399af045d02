"""The libraries a .blend links (its LI blocks), read without Blender, so a library outside the
asset's folder is refused before Blender opens it.

A .blend is a header, then blocks (4-byte code, length, old pointer, SDNA index, count, data),
ending with 'ENDB'. The 'DNA1' block describes every struct, so the offset of Library.filepath
comes from the file itself, whatever the Blender version (3.4 to 5.x layouts below).
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Iterable

from .asset_refs import Ref, resolve


class BlendFormatError(ValueError):
    """The file cannot be read as a .blend here (bad layout, or zstd without its module)."""


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError:
            raise BlendFormatError("zstd-compressed, and the zstandard module is missing") from None
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True,
                                                           closefd=True)
    return open(path, "rb")


def _read(fh, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise BlendFormatError("truncated")
    return data


def _layout(fh) -> tuple[str, int, str]:
    """(byte order, pointer size, block header format) from the file header."""
    head = _read(fh, 12)
    if not head.startswith(b"BLENDER"):
        raise BlendFormatError("not a .blend")
    if head[7:8] in (b"_", b"-"):  # 'BLENDER-v304': pointer size, endianness, version
        order = "<" if head[8:9] == b"v" else ">"
        return order, 4 if head[7:8] == b"_" else 8, "4siIii" if head[7:8] == b"_" else "4siQii"
    size = int(head[7:9])  # 'BLENDER17-01v0500': header size, format version 1, 64-bit lengths
    head += _read(fh, size - 12)
    order = "<" if head[12:13] == b"v" else ">"
    return order, 8, "4sIQqq"


def _blocks(fh):
    """(code, data) of the LI and DNA1 blocks; the others are skipped."""
    order, ptr, fmt = _layout(fh)
    size = struct.calcsize(order + fmt)
    large = fmt.startswith("4sI")
    while True:
        fields = struct.unpack(order + fmt, _read(fh, size))
        code, length = fields[0], fields[3] if large else fields[1]
        if code == b"ENDB":
            return
        if code in (b"LI\0\0", b"DNA1"):
            yield code, _read(fh, length), order, ptr
        else:
            while length > 0:  # compressed streams only read forwards
                length -= len(_read(fh, min(length, 1 << 20)))


def _strings(data: bytes, pos: int, count: int) -> tuple[list[str], int]:
    out = []
    for _ in range(count):
        end = data.index(b"\0", pos)
        out.append(data[pos:end].decode("latin-1"))
        pos = end + 1
    return out, (pos + 3) & ~3


def _library_path_offset(dna: bytes, order: str, ptr: int) -> int:
    """Offset of Library.filepath (or .name before 2.93) from the SDNA."""
    (count,) = struct.unpack_from(order + "i", dna, 8)
    names, pos = _strings(dna, 12, count)
    (count,) = struct.unpack_from(order + "i", dna, pos + 4)
    types, pos = _strings(dna, pos + 8, count)
    lengths = struct.unpack_from(order + f"{count}h", dna, pos + 4)
    pos = (pos + 4 + 2 * count + 3) & ~3
    (structs,) = struct.unpack_from(order + "i", dna, pos + 4)
    pos += 8
    for _ in range(structs):
        type_index, fields = struct.unpack_from(order + "hh", dna, pos)
        pairs = struct.unpack_from(order + f"{2 * fields}h", dna, pos + 4)
        pos += 4 + 4 * fields
        if types[type_index] != "Library":
            continue
        offset = 0
        for field_type, field_name in zip(pairs[::2], pairs[1::2]):
            name = names[field_name]
            if name in ("filepath[1024]", "name[1024]"):
                return offset
            offset += _field_size(name, lengths[field_type], ptr)
    raise BlendFormatError("no Library.filepath in the SDNA")


def _field_size(name: str, type_length: int, ptr: int) -> int:
    if name.startswith(("*", "(*")):
        return ptr * _array_count(name)
    return type_length * _array_count(name)


def _array_count(name: str) -> int:
    count = 1
    for part in name.split("[")[1:]:
        count *= int(part.split("]")[0])
    return count


def library_paths(path: str | os.PathLike) -> list[str]:
    """The library file paths a .blend names, as written ('//' = relative to the .blend)."""
    blocks, dna = [], None
    try:
        with _open(Path(path)) as fh:
            for code, data, order, ptr in _blocks(fh):
                if code == b"DNA1":
                    dna = (data, order, ptr)
                else:
                    blocks.append(data)
        if not blocks:
            return []
        if dna is None:
            raise BlendFormatError("no DNA1 block")
        offset = _library_path_offset(*dna)
    except (OSError, EOFError, struct.error, IndexError, ValueError) as exc:
        raise BlendFormatError(str(exc) or type(exc).__name__) from None
    return [data[offset:offset + 1024].split(b"\0")[0].decode("utf-8", "surrogateescape") for data in blocks]


def library_refs(path: str | os.PathLike, roots: Iterable[str]) -> list[Ref]:
    """Every library a .blend may load: its own, then those the libraries inside link."""
    roots, refs = tuple(roots), []
    seen, todo = {os.path.realpath(path)}, [Path(path)]
    while todo:
        blend = todo.pop(0)
        for raw in library_paths(blend):
            rel = raw[2:] if raw.startswith("//") else raw  # '//' = beside the file naming it
            ref = Ref("library", raw, resolve(blend.parent, rel, roots))
            refs.append(ref)
            if ref.inside and ref.path not in seen and os.path.isfile(ref.path):
                seen.add(ref.path)
                todo.append(Path(ref.path))
    return refs
