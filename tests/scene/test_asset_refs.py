"""Assets read only their own files (issue 11 section 6), on the PyPI bpy.

Each hostile asset lives in tmp_path/asset and reaches for tmp_path/outside: a glTF buffer fails
the asset, a texture is refused and listed, and Blender never loads what was refused.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from PIL import Image  # noqa: E402

from blender_addon.rig.blend_refs import BlendFormatError  # noqa: E402
from blender_addon.rig.spec import spec_from_dict  # noqa: E402
from blender_addon.scene import build, confine, importers  # noqa: E402
from blender_addon.scene.errors import AssetError  # noqa: E402
from blender_addon.scene.importers import import_asset, missing_textures  # noqa: E402
from blender_addon.scene.render import render_asset  # noqa: E402

TRIANGLE = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
QUAD_OBJ = ("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
            "usemtl {mat}\nf 1/1 2/2 3/3 4/4\n")


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    """(asset folder, outside folder holding geometry bytes and a PNG)."""
    asset, outside = tmp_path / "asset", tmp_path / "outside"
    asset.mkdir()
    outside.mkdir()
    (outside / "data.bin").write_bytes(TRIANGLE)
    Image.new("RGB", (4, 4), (255, 0, 0)).save(outside / "secret.png")
    build.reset_scene()
    return asset, outside


def tiny_spec():
    return spec_from_dict({"camera": {"pattern": "explicit", "explicit": [[0.0, 20.0, 3.0]]},
                           "render": {"resolution_x": 32, "resolution_y": 32, "samples": 1}})


def triangle_gltf(folder: Path, buffer_uri: str, images=(), name="tri.gltf") -> Path:
    doc = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
           "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
           "buffers": [{"byteLength": len(TRIANGLE), "uri": buffer_uri}],
           "bufferViews": [{"buffer": 0, "byteLength": len(TRIANGLE)}],
           "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                          "min": [0, 0, 0], "max": [1, 1, 0]}]}
    if images:
        doc["images"] = [{"uri": uri} for uri in images]
        doc["textures"] = [{"source": i} for i in range(len(images))]
        doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
        if len(images) > 1:
            doc["materials"][0]["emissiveTexture"] = {"index": 1}
        doc["meshes"][0]["primitives"][0]["material"] = 0
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def triangle_glb(folder: Path, images=()) -> Path:
    """The triangle as a .glb, its geometry in the binary chunk."""
    doc = json.loads(triangle_gltf(folder, "", images, name="tmp.gltf").read_text())
    del doc["buffers"][0]["uri"]
    raw = json.dumps(doc).encode()
    raw += b" " * (-len(raw) % 4)
    binary = struct.pack("<I", len(TRIANGLE)) + b"BIN\0" + TRIANGLE
    path = folder / "tri.glb"
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(raw) + len(binary)) + struct.pack("<I", len(raw))
                     + b"JSON" + raw + binary)
    return path


def image_files() -> set[str]:
    return {os.path.realpath(bpy.path.abspath(img.filepath)) for img in bpy.data.images if img.filepath}


def refused(entries) -> list[str]:
    return [e for e in entries if "(refused: outside the asset's folder)" in e]


# --- glTF buffers fail the asset -----------------------------------------------------------------------
def test_buffer_inside_renders(dirs, tmp_path):
    """The control: the same triangle with its buffer beside it renders."""
    asset, _ = dirs
    (asset / "data.bin").write_bytes(TRIANGLE)
    result = render_asset(triangle_gltf(asset, "data.bin"), tiny_spec(), tmp_path / "out")
    assert result.files == ["000.png"] and refused(result.missing_textures) == []


@pytest.mark.parametrize("how", ["absolute", "dotdot", "percent", "symlink_file", "symlink_dir"])
def test_buffer_outside_fails_with_the_reason_and_leaves_no_pngs(dirs, tmp_path, how):
    asset, outside = dirs
    if how == "symlink_file":
        (asset / "link.bin").symlink_to(outside / "data.bin")
    if how == "symlink_dir":
        (asset / "sub").symlink_to(outside, target_is_directory=True)
    uri = {"absolute": str(outside / "data.bin"), "dotdot": "../outside/data.bin",
           "percent": "%2E%2E/outside/data.bin", "symlink_file": "link.bin", "symlink_dir": "sub/data.bin"}[how]
    out = tmp_path / "out"
    with pytest.raises(AssetError) as info:
        render_asset(triangle_gltf(asset, uri), tiny_spec(), out)
    assert str(info.value) == f"tri.gltf: buffer 0 uri '{uri}' is outside the asset's folder"
    assert not out.exists() or not list(out.glob("*.png"))


def test_glb_buffer_uri_outside_fails(dirs):
    asset, outside = dirs
    doc = json.loads(triangle_gltf(asset, str(outside / "data.bin")).read_text())
    raw = json.dumps(doc).encode()
    raw += b" " * (-len(raw) % 4)
    path = asset / "tri.glb"
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(raw)) + struct.pack("<I", len(raw)) + b"JSON" + raw)
    with pytest.raises(AssetError, match=r"^tri\.glb: buffer 0 uri '.*' is outside the asset's folder$"):
        import_asset(path)
    assert [o.type for o in import_asset(triangle_glb(asset))] == ["MESH"]  # the control


def test_allowed_dirs_let_a_buffer_in(dirs):
    asset, outside = dirs
    objects = import_asset(triangle_gltf(asset, str(outside / "data.bin")), allowed_dirs=[outside])
    assert [o.type for o in objects] == ["MESH"]


# --- textures are refused and listed -------------------------------------------------------------------
def test_gltf_image_outside_is_refused_and_never_loaded(dirs, tmp_path):
    asset, outside = dirs
    (asset / "data.bin").write_bytes(TRIANGLE)
    Image.new("RGB", (4, 4)).save(asset / "ok.png")
    path = triangle_gltf(asset, "data.bin", images=[str(outside / "secret.png"), "ok.png"])
    objects = import_asset(path)
    assert objects and str(outside / "secret.png") not in image_files()
    assert str(asset / "ok.png") in image_files()  # the image inside is still read
    assert refused(missing_textures()) == [f"{outside / 'secret.png'} (refused: outside the asset's folder)"]
    result = render_asset(path, tiny_spec(), tmp_path / "out")  # the asset still renders
    assert result.files == ["000.png"] and len(refused(result.to_dict()["missing_textures"])) == 1


def write_obj(asset: Path, mtl_text: str, mtllib: str = "quad.mtl", mat: str = "m") -> Path:
    (asset / "quad.mtl").write_text(mtl_text)
    path = asset / "quad.obj"
    path.write_text(f"mtllib {mtllib}\n" + QUAD_OBJ.format(mat=mat))
    return path


@pytest.mark.parametrize("how", ["absolute", "options", "dotdot", "symlink"])
def test_obj_texture_outside_is_refused_and_never_loaded(dirs, how):
    asset, outside = dirs
    Image.new("RGB", (4, 4)).save(asset / "ok.png")
    if how == "symlink":
        (asset / "tex.png").symlink_to(outside / "secret.png")
    secret = outside / "secret.png"
    line = {"absolute": f"map_Kd {secret}", "options": f"map_Kd -s 1 1 1 -bm 0.5 {secret}",
            "dotdot": "map_Kd ../outside/secret.png", "symlink": "map_Kd tex.png"}[how]
    path = write_obj(asset, f"newmtl m\nKd 1 1 1\n{line}\nmap_Ks ok.png\n")
    objects = import_asset(path)
    assert [o.type for o in objects] == ["MESH"] and "m" in bpy.data.materials
    assert str(outside / "secret.png") not in image_files()
    assert str(asset / "ok.png") in image_files()
    assert len(refused(missing_textures())) == 1, missing_textures()


def test_obj_material_library_outside_is_never_read(dirs):
    asset, outside = dirs
    (outside / "evil.mtl").write_text(f"newmtl evil\nKd 1 0 0\nmap_Kd {outside / 'secret.png'}\n")
    path = write_obj(asset, "newmtl m\nKd 1 1 1\n", mtllib="../outside/evil.mtl", mat="evil")
    import_asset(path)
    assert str(outside / "secret.png") not in image_files()
    evil = bpy.data.materials["evil"]  # made up by the importer for 'usemtl evil', not read from evil.mtl
    assert tuple(evil.diffuse_color)[:3] != (1.0, 0.0, 0.0)
    assert not [node for node in evil.node_tree.nodes if node.type == "TEX_IMAGE"]
    assert refused(missing_textures()) == ["../outside/evil.mtl (refused: outside the asset's folder)"]


def test_obj_texture_inside_and_allowed_dirs_are_read(dirs):
    asset, outside = dirs
    path = write_obj(asset, f"newmtl m\nmap_Kd {outside / 'secret.png'}\n")
    import_asset(path, allowed_dirs=[outside])
    assert str(outside / "secret.png") in image_files() and missing_textures() == []


@pytest.mark.parametrize("kind", ["gltf", "glb", "obj"])
def test_the_check_before_the_import_alone_keeps_blender_away(dirs, monkeypatch, kind):
    """Without the clean-up after the import, Blender is still never handed the file."""
    asset, outside = dirs
    monkeypatch.setattr(importers, "refuse_outside", lambda before, roots, name: [])
    (asset / "data.bin").write_bytes(TRIANGLE)
    if kind == "gltf":
        path = triangle_gltf(asset, "data.bin", images=[str(outside / "secret.png")])
    elif kind == "glb":
        path = triangle_glb(asset, images=[str(outside / "secret.png")])
    else:
        path = write_obj(asset, f"newmtl m\nmap_Kd {outside / 'secret.png'}\n")
    import_asset(path)
    assert str(outside / "secret.png") not in image_files()
    assert len(refused(missing_textures())) == 1


# --- FBX and .blend: checked after the import ----------------------------------------------------------
def textured_cube(*images: Path):
    """A cube with one material per image."""
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.active_object
    for image_path in images:
        mat = bpy.data.materials.new(image_path.stem)
        node = mat.node_tree.nodes.new("ShaderNodeTexImage")
        node.image = bpy.data.images.load(str(image_path))
        mat.node_tree.links.new(node.outputs["Color"], mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"])
        cube.data.materials.append(mat)
    return cube


@pytest.mark.parametrize("ext", ["fbx", "blend"])
def test_image_outside_an_fbx_or_blend_is_removed_and_listed(dirs, ext):
    asset, outside = dirs
    Image.new("RGB", (4, 4)).save(asset / "ok.png")
    cube = textured_cube(outside / "secret.png", asset / "ok.png")
    path = asset / f"cube.{ext}"
    if ext == "fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), path_mode="RELATIVE")  # ../outside/secret.png
    else:
        bpy.data.libraries.write(str(path), {cube}, path_remap="RELATIVE_ALL")
    build.reset_scene()
    objects = import_asset(path)
    assert [o.type for o in objects] == ["MESH"]
    assert str(outside / "secret.png") not in image_files()
    assert str(asset / "ok.png") in image_files()  # the image inside stays
    assert refused(missing_textures()) == missing_textures() and len(missing_textures()) == 1, missing_textures()


def linking_blend(asset: Path, library: Path, *, compress=False) -> Path:
    """asset/linker.blend: an object whose mesh is linked from `library`."""
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    bpy.data.libraries.write(str(library), {bpy.context.active_object})
    build.reset_scene()
    with bpy.data.libraries.load(str(library), link=True) as (src, dst):
        dst.meshes = list(src.meshes)
    obj = bpy.data.objects.new("linker", dst.meshes[0])
    bpy.context.scene.collection.objects.link(obj)
    path = asset / "linker.blend"
    bpy.data.libraries.write(str(path), {obj}, path_remap="RELATIVE_ALL", compress=compress)
    build.reset_scene()
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_blend_library_outside_is_refused_before_loading(dirs, compress):
    asset, outside = dirs
    path = linking_blend(asset, outside / "lib.blend", compress=compress)
    with pytest.raises(AssetError, match=r"^linker\.blend: library uri '//\.\./outside/lib\.blend' is outside"):
        import_asset(path)
    assert not bpy.data.libraries and not bpy.data.objects  # Blender never opened either file


def test_blend_library_outside_is_refused_after_loading_when_unreadable_before(dirs, monkeypatch):
    """A .blend the reader cannot parse (e.g. zstd without its module) is still checked after loading."""
    asset, outside = dirs
    path = linking_blend(asset, outside / "lib.blend")

    def unreadable(*args):
        raise BlendFormatError("zstd-compressed, and the zstandard module is missing")

    monkeypatch.setattr(confine, "library_refs", unreadable)
    with pytest.raises(AssetError, match=r"^linker\.blend: library 'lib\.blend' file '.*lib\.blend' is outside"):
        import_asset(path)


def test_blend_library_inside_is_linked(dirs):
    asset, _ = dirs
    objects = import_asset(linking_blend(asset, asset / "lib.blend"))
    assert [o.type for o in objects] == ["MESH"] and len(objects[0].data.polygons) == 6


def test_blend_geometry_node_reading_a_file_outside_fails(dirs):
    asset, outside = dirs
    (outside / "points.csv").write_text("x,y,z\n0,0,0\n")
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.active_object
    group = bpy.data.node_groups.new("reader", "GeometryNodeTree")
    node = group.nodes.new("GeometryNodeImportCSV")
    node.inputs["Path"].default_value = str(outside / "points.csv")
    cube.modifiers.new("reader", "NODES").node_group = group
    path = asset / "reader.blend"
    bpy.data.libraries.write(str(path), {cube})
    build.reset_scene()
    with pytest.raises(AssetError, match="node 'Import CSV' in 'reader' file '.*points.csv' is outside"):
        import_asset(path)


def test_blend_scripts_stay_disabled(dirs):
    """A .blend's driver expression and registered text do not run; with auto-run on they would."""
    asset, _ = dirs
    markers = [asset / "driver.txt", asset / "text.txt"]
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.active_object
    driver = cube.driver_add("location", 0).driver
    driver.type = "SCRIPTED"
    driver.expression = f"__import__('pathlib').Path({str(markers[0])!r}).write_text('ran') and 0.0"
    text = bpy.data.texts.new("autorun.py")
    text.write(f"import pathlib\npathlib.Path({str(markers[1])!r}).write_text('ran')\n")
    text.use_module = True
    path = asset / "scripted.blend"
    bpy.data.libraries.write(str(path), {cube, text})

    assert bpy.context.preferences.filepaths.use_scripts_auto_execute is False
    for auto_run in (False, True):
        build.reset_scene()
        bpy.context.preferences.filepaths.use_scripts_auto_execute = auto_run
        try:
            objects = import_asset(path)
            bpy.context.scene.frame_set(1)
            bpy.context.view_layer.update()
        finally:
            bpy.context.preferences.filepaths.use_scripts_auto_execute = False
        assert objects[0].animation_data.drivers  # the driver came along
        if not auto_run:
            assert not any(m.exists() for m in markers)
    assert markers[0].exists(), "the control: with auto-run on, the driver's expression runs"
    assert not markers[1].exists()  # importing never runs a text block
