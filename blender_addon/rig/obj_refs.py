"""The files an OBJ makes Blender read: its material libraries ('mtllib' lines, and <stem>.mtl
beside it) and the textures they name (map_*, refl, bump, disp, norm, decal lines).

Read the way Blender 4.x/5.0's OBJ importer reads them (io/wavefront_obj), and, where that is
loose, more strictly: a texture line is refused when any tail of it could be a path outside.
"""
from __future__ import annotations

import mmap
import os
import re
from pathlib import Path
from typing import Iterable, NamedTuple

from .asset_refs import Ref, resolve

TEXTURE_KEYS = (b"map_", b"refl", b"bump", b"disp", b"norm", b"decal")
# Blender's parser takes every byte <= ' ' as a blank, and, as a signed char, every byte >= 0x80.
BLANKS = bytes(range(33)) + bytes(range(128, 256))
_WORD = re.compile(rb"[^\x00-\x20\x80-\xff]+")
# Blender's texture options and how many arguments each takes (-o, -s, -t: up to 3 numbers).
_OPTION_ARGS = {b"-o": 3, b"-s": 3, b"-t": 3, b"-bm": 1, b"-type": 1, b"-blendu": 1, b"-blendv": 1,
                b"-boost": 1, b"-cc": 1, b"-clamp": 1, b"-imfchan": 1, b"-texres": 1, b"-mm": 2}
_NUMBER = re.compile(rb"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_TRIM = b" \t\n\v\f\r"  # what Blender trims from the ends of a path


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")  # file names round-trip through os functions


# --- the .obj: mtllib lines ------------------------------------------------------------------------
def _continues(line: bytes) -> bool:
    # Blender turns a backslash, optional blanks and the newline into spaces
    return line.rstrip(BLANKS).endswith(b"\\")


def _logical_line(data, pos: int) -> tuple[int, int]:
    """Start and end (after the newline) of the logical line holding byte `pos`."""
    start = data.rfind(b"\n", 0, pos) + 1
    while start > 0:
        prev = data.rfind(b"\n", 0, start - 1) + 1
        if not _continues(data[prev:start - 1]):
            break
        start = prev
    end = pos
    while True:
        nl = data.find(b"\n", end)
        if nl < 0:
            return start, len(data)
        if not _continues(data[end:nl]):
            return start, nl + 1
        end = nl + 1


def _mtllib_value(line: bytes) -> str | None:
    text = re.sub(rb"\\[\x00-\x09\x0b-\x20\x80-\xff]*\n", b"  ", line).lstrip(BLANKS)
    if not text.startswith(b"mtllib") or len(text) < 7 or text[6] not in BLANKS:
        return None
    value = text[7:].strip(_TRIM)
    if len(value) > 2 and value[:1] == value[-1:] == b'"':
        value = value[1:-1]
    return _text(value)


def mtllib_lines(obj_path: str | os.PathLike) -> list[tuple[int, int, str]]:
    """(start, end, library) for each mtllib line, found without reading the OBJ line by line."""
    found = []
    with open(obj_path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return []
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            pos = data.find(b"mtllib")
            while pos >= 0:
                start, end = _logical_line(data, pos)
                value = _mtllib_value(data[start:end])
                if value is not None:
                    found.append((start, end, value))
                pos = data.find(b"mtllib", max(end, pos + 1))
    return found


def material_libraries(obj_path: str | os.PathLike, roots: Iterable[str]) -> list[Ref]:
    """The .mtl files Blender would read for this OBJ, in order, each once."""
    obj_path = Path(obj_path)
    names = [value for _, _, value in mtllib_lines(obj_path)]
    if obj_path.with_suffix(".mtl").exists():  # Blender also reads <stem>.mtl
        names.append(obj_path.with_suffix(".mtl").name)
    roots = tuple(roots)
    return [Ref("mtllib", name, resolve(obj_path.parent, name, roots)) for name in dict.fromkeys(names)]


# --- the .mtl: texture lines -----------------------------------------------------------------------
def _split_options(rest: bytes) -> tuple[bytes, bytes]:
    """(options, image path) of a texture line's arguments, as Blender splits them."""
    words, i = list(_WORD.finditer(rest)), 0
    while i < len(words) and words[i].group() in _OPTION_ARGS:
        option, i = words[i].group(), i + 1
        for _ in range(_OPTION_ARGS[option]):
            if i == len(words) or (option in (b"-o", b"-s", b"-t") and not _NUMBER.match(words[i].group())):
                break
            i += 1
    if i == len(words):
        return rest.strip(BLANKS), b""
    start = words[i].start()
    return rest[:start].strip(BLANKS), rest[start:].strip(_TRIM)


def _tails(rest: bytes) -> list[str]:
    """Every tail of the arguments that follows a blank, quotes removed: each could be read as
    the path, depending on how the options (and odd bytes) are parsed."""
    starts = [0] + [i for i in range(1, len(rest)) if rest[i - 1] in BLANKS]
    tails = (rest[i:].strip(_TRIM).replace(b'"', b"") for i in starts)
    return [_text(tail) for tail in tails if tail]


class ConfinedMtl(NamedTuple):
    data: bytes  # the .mtl with every texture path absolute and every line reaching outside dropped
    refused: list[Ref]
    missing: list[str]  # textures inside that do not exist (dropped too: Blender would go looking)


def confine_mtl(mtl_path: str | os.PathLike, roots: Iterable[str]) -> ConfinedMtl:
    mtl_path = Path(mtl_path)
    base, roots = mtl_path.parent, tuple(roots)
    lines, refused, missing = [], [], []
    for line in mtl_path.read_bytes().split(b"\n"):  # Blender splits at '\n' only
        stripped = line.strip(BLANKS)
        if not stripped.startswith(TEXTURE_KEYS):
            lines.append(line)
            continue
        keyword = _WORD.match(stripped).group()
        rest = stripped[len(keyword):]
        outside = [tail for tail in _tails(rest) if resolve(base, tail, roots) is None]
        options, image = _split_options(rest)
        if outside:
            refused.append(Ref(f"{mtl_path.name} {_text(keyword)}", outside[0], None))
        elif image:
            path = resolve(base, _text(image.replace(b'"', b"")), roots)
            if os.path.isfile(path):
                lines.append(b" ".join(part for part in (keyword, options, os.fsencode(path)) if part))
            else:
                missing.append(path)
    return ConfinedMtl(b"\n".join(lines), refused, missing)


def obj_refusals(obj_path: str | os.PathLike, roots: Iterable[str]) -> list[Ref]:
    """The material libraries and textures of this OBJ that lead outside `roots`."""
    refused = []
    for lib in material_libraries(obj_path, roots):
        if not lib.inside:
            refused.append(lib)
        elif os.path.isfile(lib.path):
            refused.extend(confine_mtl(lib.path, roots).refused)
    return refused


def _copy_range(src, dst, start: int, end: int, chunk: int = 1 << 20) -> None:
    src.seek(start)
    while start < end:
        data = src.read(min(chunk, end - start))
        if not data:
            return
        dst.write(data)
        start += len(data)


def write_confined_obj(obj_path: str | os.PathLike, roots: Iterable[str], folder: str | os.PathLike) -> list[str]:
    """Copy the OBJ into `folder` under its own name, its mtllib lines pointing at confined copies
    of the libraries inside (see confine_mtl); lines naming a library outside are dropped.
    Returns the textures inside that are missing."""
    obj_path, folder, roots = Path(obj_path), Path(folder), tuple(roots)
    staged, missing = {}, []
    for n, lib in enumerate(material_libraries(obj_path, roots)):
        if lib.inside and os.path.isfile(lib.path):
            confined = confine_mtl(lib.path, roots)
            staged[lib.uri] = f"{obj_path.stem}.lib{n}.mtl"
            (folder / staged[lib.uri]).write_bytes(confined.data)
            missing.extend(confined.missing)
    default = obj_path.with_suffix(".mtl").name  # Blender looks for <stem>.mtl beside the OBJ
    if default in staged:
        (folder / default).write_bytes((folder / staged[default]).read_bytes())
    with open(obj_path, "rb") as src, open(folder / obj_path.name, "wb") as dst:
        pos = 0
        for start, end, value in mtllib_lines(obj_path):
            _copy_range(src, dst, pos, start)
            dst.write(f"mtllib {staged[value]}\n".encode() if value in staged else b"\n")
            pos = end
        _copy_range(src, dst, pos, os.fstat(src.fileno()).st_size)
    return sorted(set(missing))
