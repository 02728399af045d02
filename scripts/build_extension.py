#!/usr/bin/env python3
"""Build the add-on's two zips into dist/.

- mvcap_studio-VERSION.zip: the Blender 4.2+ extension (Preferences > Get Extensions > Install
  from Disk): blender_addon/ plus a generated blender_manifest.toml and the pyzmq and Pillow
  wheels (farm link, Render All Views) that Blender installs with it;
- mvcap_studio-VERSION-legacy.zip: the same package in an `mvcap_studio/` folder, for Blender 3.4
  to 4.1 (Preferences > Add-ons > Install). It bundles no wheels: see the README.

    python3 scripts/build_extension.py [-o dist/] [--platforms linux-x64,...] [--only legacy|extension]

Any Python 3.8+ with pip runs it, the system one too; wheels are downloaded once into --wheel-cache.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "blender_addon"
EXT_ID = "mvcap_studio"
PYTHON = "3.11"  # Blender 4.2 to 5.0 bundle Python 3.11
# Wheels the extension bundles (distribution -> version): pyzmq for the farm link, Pillow for
# Render All Views (scene.render reads each view's alpha with it). Blender bundles numpy.
BUNDLED = {"pyzmq": "27.3.0", "pillow": "13.0.0"}
# Blender platform -> pip --platform tags (pip picks the best wheel among them)
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux-arm64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
    "windows-x64": ["win_amd64"],
    "windows-arm64": ["win_arm64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_10_15_universal2"],
    "macos-x64": ["macosx_10_15_x86_64", "macosx_10_9_x86_64", "macosx_10_15_universal2"],
}
DEFAULT_PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64", "macos-x64")
SKIP_PARTS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".blend1"}


def bl_info() -> dict:
    """bl_info from the add-on's __init__.py, read without importing it (no bpy needed)."""
    tree = ast.parse((ADDON / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("error: blender_addon/__init__.py has no bl_info")


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(values) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def manifest(info: dict, wheels: list[str], platforms: list[str]) -> str:
    version = ".".join(str(v) for v in info["version"])
    lines = [
        'schema_version = "1.0.0"',
        "",
        f"id = {_toml_str(EXT_ID)}",
        f"version = {_toml_str(version)}",
        f"name = {_toml_str(info['name'])}",
        'tagline = "Design multi-view camera rigs and send render jobs to a farm"',
        'maintainer = "MVCap Studio"',
        'type = "add-on"',
        'tags = ["Render", "Camera", "Pipeline"]',
        'blender_version_min = "4.2.0"',
        'license = ["SPDX:GPL-3.0-or-later"]',
        f"platforms = {_toml_list(platforms)}",
        f"wheels = {_toml_list('./wheels/' + w for w in wheels)}",
        "",
        "[permissions]",
        'network = "Submit render jobs to an MVCap farm"',
        'files = "Import assets and export specs"',
        "",
        "[build]",
        'paths_exclude_pattern = ["__pycache__/", "*.pyc", ".*"]',
        "",
    ]
    return "\n".join(lines)


def download_wheels(platforms: list[str], dist: str, version: str, cache: Path) -> list[Path]:
    """One wheel of `dist` per platform (cp311), from the cache or `pip download`."""
    wheels: list[Path] = []
    for plat in platforms:
        folder = cache / plat
        found = sorted(folder.glob(f"{dist}-{version}-*.whl")) if folder.is_dir() else []
        if not found:
            cmd = [sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps", "--only-binary=:all:",
                   "--python-version", PYTHON, "--implementation", "cp", "--abi", "cp" + PYTHON.replace(".", ""),
                   "--quiet", "--disable-pip-version-check", "-d", str(folder)]
            for tag in PLATFORMS[plat]:
                cmd += ["--platform", tag]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(folder.glob(f"{dist}-{version}-*.whl"))
            if proc.returncode != 0 or not found:
                reason = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise SystemExit(f"error: cannot download {dist} {version} for {plat}: {reason}")
        wheels.append(found[-1])
    return list({w.name: w for w in wheels}.values())  # a universal2 wheel may serve two platforms


def addon_files():
    for path in sorted(ADDON.rglob("*")):
        rel = path.relative_to(ADDON)
        if path.is_dir() or SKIP_PARTS & set(rel.parts) or path.suffix in SKIP_SUFFIXES:
            continue
        if rel.name == "blender_manifest.toml":
            continue  # generated below
        yield path, rel.as_posix()


def build_extension(out_dir: Path, platforms: list[str], versions: dict[str, str], cache: Path) -> Path:
    info = bl_info()
    wheels = [w for dist, version in versions.items() for w in download_wheels(platforms, dist, version, cache)]
    target = out_dir / f"{EXT_ID}-{_version(info)}.zip"
    with _ZipWriter(target) as zf:
        zf.writestr("blender_manifest.toml", manifest(info, [w.name for w in wheels], platforms))
        for path, rel in addon_files():
            zf.write(path, rel)
        for wheel in wheels:
            zf.write(wheel, "wheels/" + wheel.name)
    return target


def build_legacy(out_dir: Path) -> Path:
    """The package in a folder named as the module: what Blender 3.4-4.1's Install button expects."""
    target = out_dir / f"{EXT_ID}-{_version(bl_info())}-legacy.zip"
    with _ZipWriter(target) as zf:
        for path, rel in addon_files():
            zf.write(path, f"{EXT_ID}/{rel}")
    return target


def _version(info: dict) -> str:
    return ".".join(str(v) for v in info["version"])


class _ZipWriter:
    """A zip written under a temporary name and renamed once complete."""

    def __init__(self, target: Path):
        self.target, self.tmp = target, target.with_suffix(".zip.tmp")

    def __enter__(self) -> zipfile.ZipFile:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.zf = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_DEFLATED)
        return self.zf

    def __exit__(self, exc_type, *_):
        self.zf.close()
        if exc_type is None:
            self.tmp.replace(self.target)
        else:
            self.tmp.unlink()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=REPO / "dist", help="output folder (default dist/)")
    ap.add_argument("--only", choices=("extension", "legacy"), help="build one of the two zips")
    ap.add_argument("--platforms", default=",".join(DEFAULT_PLATFORMS),
                    help=f"comma-separated Blender platforms of the extension; known: {', '.join(PLATFORMS)}")
    ap.add_argument("--pyzmq-version", default=BUNDLED["pyzmq"], help="pyzmq to bundle (default %(default)s)")
    ap.add_argument("--pillow-version", default=BUNDLED["pillow"], help="Pillow to bundle (default %(default)s)")
    ap.add_argument("--wheel-cache", type=Path, default=REPO / "dist" / "wheel-cache",
                    help="where downloaded wheels are kept between builds")
    args = ap.parse_args(argv)
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        ap.error(f"--platforms: {', '.join(unknown) or 'empty'} unknown; known: {', '.join(PLATFORMS)}")
    if args.only != "legacy":
        versions = {"pyzmq": args.pyzmq_version, "pillow": args.pillow_version}
        print(build_extension(args.out, platforms, versions, args.wheel_cache))
    if args.only != "extension":
        print(build_legacy(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
