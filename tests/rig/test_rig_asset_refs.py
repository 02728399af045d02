"""The bpy-free side of "assets read only their own files": the path rule, the glTF and OBJ
readers and the confined copies, and the .blend library reader (on synthetic files of each
block layout; real Blender files are covered in tests/scene/test_asset_refs.py)."""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from blender_addon.rig.asset_refs import (asset_roots, confined_gltf, gltf_json, gltf_refs, is_inside, resolve,
                                          write_gltf)
from blender_addon.rig.blend_refs import BlendFormatError, library_paths, library_refs
from blender_addon.rig.obj_refs import (confine_mtl, material_libraries, mtllib_lines, obj_refusals,
                                        write_confined_obj)


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path, tuple[str, ...]]:
    """(asset folder, outside folder, roots) with asset/sub/, a file each, and symlinks out."""
    asset, outside = tmp_path / "asset", tmp_path / "asset2"  # a sibling sharing the name's prefix
    (asset / "sub").mkdir(parents=True)
    outside.mkdir()
    (asset / "sub" / "in.bin").write_bytes(b"in")
    (outside / "out.bin").write_bytes(b"out")
    (asset / "link.bin").symlink_to(outside / "out.bin")
    (asset / "linkdir").symlink_to(outside, target_is_directory=True)
    return asset, outside, asset_roots(asset / "model.gltf")


# --- the rule ---------------------------------------------------------------------------------------
def test_paths_inside_resolve(tree):
    asset, _, roots = tree
    assert resolve(asset, "sub/in.bin", roots) == str(asset / "sub" / "in.bin")
    assert resolve(asset, "sub/../sub/in.bin", roots) == str(asset / "sub" / "in.bin")
    assert resolve(asset, str(asset / "sub" / "in.bin"), roots) == str(asset / "sub" / "in.bin")
    assert resolve(asset, "missing/file.png", roots) == str(asset / "missing" / "file.png")


@pytest.mark.parametrize("raw", ["../asset2/out.bin", "sub/../../asset2/out.bin", "..\\asset2\\out.bin", "..",
                                 "link.bin", "linkdir/out.bin", "{outside}/out.bin", "sub/in.bin\0"])
def test_paths_leaving_the_folder_are_refused(tree, raw):
    asset, outside, roots = tree
    assert resolve(asset, raw.format(outside=outside), roots) is None


def test_allowed_dirs_are_inside_too(tree):
    asset, outside, _ = tree
    roots = asset_roots(asset / "model.gltf", [outside])
    assert resolve(asset, "link.bin", roots) == str(outside / "out.bin")
    assert is_inside(str(outside / "out.bin"), roots)


# --- glTF -------------------------------------------------------------------------------------------
def gltf_doc(buffers, images=()):
    return {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 2, "uri": u} for u in buffers],
            "images": [{"uri": u} if u else {"bufferView": 0} for u in images]}


def test_gltf_refs_label_every_file_and_skip_embedded_data(tree):
    asset, _, roots = tree
    doc = gltf_doc(["sub/in.bin", "data:application/octet-stream;base64,AAAA", "%2E%2E/asset2/out.bin"],
                   ["sub/in%2Ebin", None, "data:x/../../asset2/out.bin"])
    refs = {ref.label: ref for ref in gltf_refs(doc, asset, roots)}
    assert sorted(refs) == ["buffer 0", "buffer 2", "image 0", "image 2"]
    assert refs["buffer 0"].inside and refs["image 0"].path == str(asset / "sub" / "in.bin")
    assert not refs["buffer 2"].inside  # percent-decoded, as the importer does
    assert not refs["image 2"].inside  # no ';base64,': the importer reads it as a path
    assert refs["buffer 2"].refusal() == "buffer 2 uri '%2E%2E/asset2/out.bin' is outside the asset's folder"


def test_confined_gltf_drops_images_outside_and_makes_the_rest_absolute(tree):
    asset, _, roots = tree
    doc = gltf_doc(["sub/in.bin"], ["link.bin", "sub/in.bin", "data:image/png;base64,AAAA"])
    confined = confined_gltf(doc, asset, roots)
    assert "uri" not in confined["images"][0]
    assert confined["images"][1]["uri"] == confined["buffers"][0]["uri"] == str(asset / "sub" / "in.bin")
    assert confined["images"][2]["uri"] == "data:image/png;base64,AAAA"
    assert doc["images"][0]["uri"] == "link.bin"  # the document read is left alone


def test_write_gltf_replaces_the_glb_json_chunk_and_keeps_the_binary(tmp_path):
    raw = json.dumps(gltf_doc([])).encode() + b" "
    binary = b"\x01\x02\x03\x04" * 3
    glb = tmp_path / "in.glb"
    total = 20 + len(raw) + 8 + len(binary)
    glb.write_bytes(b"glTF" + struct.pack("<II", 2, total) + struct.pack("<I", len(raw)) + b"JSON" + raw
                    + struct.pack("<I", len(binary)) + b"BIN\0" + binary)
    doc = gltf_json(glb)
    doc["images"] = [{"uri": "x" * 13}]
    write_gltf(doc, glb, tmp_path / "out.glb")
    data = (tmp_path / "out.glb").read_bytes()
    (length,) = struct.unpack_from("<I", data, 12)
    assert length % 4 == 0 and struct.unpack_from("<I", data, 8)[0] == len(data)
    assert gltf_json(tmp_path / "out.glb") == doc
    assert data[20 + length:] == struct.pack("<I", len(binary)) + b"BIN\0" + binary
    write_gltf(doc, tmp_path / "plain.gltf", tmp_path / "out.gltf")
    assert gltf_json(tmp_path / "out.gltf") == doc


# --- OBJ and MTL ------------------------------------------------------------------------------------
def test_mtllib_lines_read_like_blender(tmp_path):
    obj = tmp_path / "m.obj"
    obj.write_bytes(b'mtllib a.mtl\n# mtllib comment.mtl\nv 0 0 0\n  mtllib "b c.mtl"\r\nmtllibx d.mtl\n'
                    b"mtllib \\\n  ../e.mtl\nv 1 1 1 \\\nmtllib f.mtl\nmtllib")
    assert [value for _, _, value in mtllib_lines(obj)] == ["a.mtl", "b c.mtl", "../e.mtl"]
    (tmp_path / "m.mtl").write_text("")
    libs = material_libraries(obj, asset_roots(obj))
    assert [(lib.uri, lib.inside) for lib in libs] == [("a.mtl", True), ("b c.mtl", True), ("../e.mtl", False),
                                                       ("m.mtl", True)]


def test_confine_mtl_refuses_any_reading_outside(tree):
    asset, outside, roots = tree
    (asset / "sub" / "t.png").write_bytes(b"png")
    mtl = asset / "m.mtl"
    mtl.write_text(f"newmtl m\nKd 1 1 1\nmap_Kd -s 1 1 1 -bm 0.5 sub/t.png\nbump \"sub/t.png\"\n"
                   f"map_Ks -o 0 0 0 {outside}/out.bin\nrefl -type sphere ../asset2/out.bin\n"
                   f"map_d linkdir/out.bin\ndisp sub/gone.png\n")
    confined = confine_mtl(mtl, roots)
    texture = str(asset / "sub" / "t.png")
    assert confined.data.decode().splitlines() == ["newmtl m", "Kd 1 1 1", f"map_Kd -s 1 1 1 -bm 0.5 {texture}",
                                                   f"bump {texture}"]
    assert [(r.label, r.uri) for r in confined.refused] == [("m.mtl map_Ks", f"{outside}/out.bin"),
                                                            ("m.mtl refl", "../asset2/out.bin"),
                                                            ("m.mtl map_d", "linkdir/out.bin")]
    assert confined.missing == [str(asset / "sub" / "gone.png")]


def test_odd_bytes_count_as_blanks_as_in_blender(tree):
    """Blender skips every byte <= ' ' and (signed char) >= 0x80 before a keyword or option."""
    asset, outside, roots = tree
    mtl = asset / "m.mtl"
    mtl.write_bytes(b"newmtl m\n\x01map_Kd ../asset2/out.bin\n\xc2\xa0bump x\xc2\xa0../asset2/out.bin\n")
    assert [r.uri for r in confine_mtl(mtl, roots).refused] == ["../asset2/out.bin", "../asset2/out.bin"]
    obj = asset / "m.obj"
    obj.write_bytes(b"\x01mtllib\xa0../asset2/x.mtl\n")
    assert [value for _, _, value in mtllib_lines(obj)] == ["../asset2/x.mtl"]


def test_write_confined_obj_points_at_confined_libraries(tree, tmp_path):
    asset, outside, roots = tree
    (outside / "evil.mtl").write_text("newmtl evil\n")
    (asset / "model.mtl").write_text(f"newmtl m\nmap_Kd {outside}/out.bin\nmap_Ks sub/in.bin\n")
    obj = asset / "model.obj"
    obj.write_text("mtllib model.mtl\nmtllib ../asset2/evil.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert [r.uri for r in obj_refusals(obj, roots)] == [f"{outside}/out.bin", "../asset2/evil.mtl"]
    staging = tmp_path / "staging"
    staging.mkdir()
    assert write_confined_obj(obj, roots, staging) == []
    assert (staging / "model.obj").read_text() == \
        "mtllib model.lib0.mtl\n\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
    expected = f"newmtl m\nmap_Ks {asset / 'sub' / 'in.bin'}\n"
    assert (staging / "model.lib0.mtl").read_text() == (staging / "model.mtl").read_text() == expected


# --- .blend libraries --------------------------------------------------------------------------------
LAYOUTS = {  # header, byte order, pointer size, block header fields in file order
    "2.49 big-endian 32-bit": (b"BLENDER_V249", ">", 4, "4siIii"),
    "3.x/4.x": (b"BLENDER-v304", "<", 8, "4siQii"),
    "5.0": (b"BLENDER17-01v0500", "<", 8, "4sIQqq"),
}


def synthetic_blend(path: Path, layout: str, library_files: list[str], compress=None) -> None:
    """A .blend holding only LI blocks and the SDNA that describes them."""
    header, order, ptr, fmt = LAYOUTS[layout]
    names = [b"*next", b"*prev", b"name[66]", b"id", b"*filedata", b"filepath[1024]"]
    types = [b"char", b"void", b"ID", b"Library"]
    id_size = 2 * ptr + 66
    sizes = [1, 0, id_size, id_size + ptr + 1024]

    def pad(data: bytes) -> bytes:
        return data + b"\0" * (-len(data) % 4)

    dna = b"SDNA" + b"NAME" + struct.pack(order + "i", len(names)) + pad(b"".join(n + b"\0" for n in names))
    dna += b"TYPE" + struct.pack(order + "i", len(types)) + pad(b"".join(t + b"\0" for t in types))
    dna += b"TLEN" + pad(struct.pack(order + f"{len(sizes)}h", *sizes))
    dna += b"STRC" + struct.pack(order + "i", 2)
    dna += struct.pack(order + "8h", 2, 3, 1, 0, 1, 1, 0, 2)  # ID {void *next, *prev; char name[66]}
    dna += struct.pack(order + "8h", 3, 3, 2, 3, 1, 4, 0, 5)  # Library {ID id; void *filedata; char filepath[]}

    def block(code: bytes, data: bytes, sdna: int) -> bytes:
        fields = (code, sdna, 1, len(data), 1) if fmt.startswith("4sI") else (code, len(data), 1, sdna, 1)
        return struct.pack(order + fmt, *fields) + data

    body = header
    for name in library_files:
        data = b"\0" * (id_size + ptr) + name.encode() + b"\0"
        body += block(b"LI\0\0", data + b"\0" * (sizes[3] - len(data)), 1)
    body += block(b"DNA1", dna, 0) + block(b"ENDB", b"", 0)
    path.write_bytes(gzip.compress(body) if compress else body)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_library_paths_of_every_layout(tmp_path, layout):
    path = tmp_path / "a.blend"
    synthetic_blend(path, layout, ["//lib.blend", "/abs/other.blend"], compress=layout == "3.x/4.x")
    assert library_paths(path) == ["//lib.blend", "/abs/other.blend"]


def test_library_refs_follow_the_libraries_inside(tree):
    asset, outside, roots = tree
    synthetic_blend(asset / "model.blend", "5.0", ["//sub/lib.blend", "//sub/gone.blend"])
    synthetic_blend(asset / "sub" / "lib.blend", "3.x/4.x", ["//../../asset2/deep.blend", "//../model.blend"])
    refs = library_refs(asset / "model.blend", roots)
    assert [(r.uri, r.inside) for r in refs] == [("//sub/lib.blend", True), ("//sub/gone.blend", True),
                                                 ("//../../asset2/deep.blend", False), ("//../model.blend", True)]
    assert refs[2].refusal() == "library uri '//../../asset2/deep.blend' is outside the asset's folder"


def test_unreadable_blend_is_a_format_error(tmp_path):
    path = tmp_path / "a.blend"
    synthetic_blend(path, "5.0", ["//lib.blend"])
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BlendFormatError):
        library_paths(path)
    path.write_bytes(b"BLENDER-v304")
    with pytest.raises(BlendFormatError):
        library_paths(path)
