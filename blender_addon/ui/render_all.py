"""Render All Views: every view of the asset rendered into a folder by scene.render.render_asset,
the farm worker's own code. It runs in a background Blender (render_asset resets its scene, so it
must never run in the artist's), which also makes it cancellable and keeps the UI responsive.
"""
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import bpy

CHILD = Path(__file__).with_name("render_all_child.py")
ADDON_DIR = Path(__file__).resolve().parent.parent
CONTACT_SHEET = "MVCap Contact Sheet"


def child_command(job_path):
    """The background Blender that runs the child script, or this Python when bpy is a module."""
    if bpy.app.binary_path:
        return [bpy.app.binary_path, "-b", "--factory-startup", "--python-exit-code", "1",
                "--python", str(CHILD), "--", str(job_path)]
    return [sys.executable, str(CHILD), str(job_path)]


class RenderAllJob:
    """One running Render All Views: poll() reads its progress without blocking."""

    def __init__(self, asset, spec, out_dir, uid):
        self.out_dir, self.total, self.done = Path(out_dir), spec.view_count, 0
        self.staging = self.out_dir.parent / f".{self.out_dir.name}.render-all"  # see render_all_child
        if self.staging.is_symlink():  # not ours: rendering into it would write where it points
            raise OSError(f"{self.staging} is a symbolic link, not Render All's own folder; remove it")
        shutil.rmtree(self.staging, ignore_errors=True)  # ours, left by a Blender that crashed
        self.sheet = str(self.out_dir.parent / f"{uid}_contact_sheet.png")
        self.result, self.error, self.cancelled = None, "", False
        job = {"addon_dir": str(ADDON_DIR), "sys_path": [p for p in sys.path if p], "asset": str(asset),
               "uid": uid, "spec": spec.to_dict(), "staging": str(self.staging), "out_dir": str(self.out_dir),
               "sheet": self.sheet}
        fd, self.job_path = tempfile.mkstemp(prefix="mvcap-render-all-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(job, fh)
        self.proc = subprocess.Popen(child_command(self.job_path), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.lines, self.tail = queue.Queue(), []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.proc.stdout.close()

    def _take(self, line):
        if not line.startswith("MVCAP "):
            self.tail = (self.tail + [line])[-20:]  # for an error the child could not name
            return
        kind, _, rest = line[6:].partition(" ")
        if kind == "PROGRESS":
            self.done, self.total = (int(v) for v in rest.split())
        elif kind == "DONE":
            self.result = json.loads(rest)
        elif kind == "ERROR":
            self.error = rest

    def poll(self):
        """Read what the child said; True once it has ended."""
        while True:
            try:
                self._take(self.lines.get_nowait())
            except queue.Empty:
                break
        if self.reader.is_alive() or self.proc.poll() is None:
            return False
        self._finish()
        return True

    def _finish(self):
        if os.path.exists(self.job_path):
            os.unlink(self.job_path)
        if self.result is None:  # cancelled or failed: out_dir is as it was
            shutil.rmtree(self.staging, ignore_errors=True)
        if self.result is None and not self.error and not self.cancelled:
            last = next((ln for ln in reversed(self.tail) if ln.strip()), "no output")
            self.error = f"the render process exited with status {self.proc.returncode}: {last.strip()}"

    def cancel(self):
        """Stop the child; its staging folder goes and out_dir is as it was."""
        self.cancelled = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        self._finish()

    def wait(self, interval=0.1):
        while not self.poll():
            self.reader.join(interval)


def show_contact_sheet(context, path):
    """Load (or reload) the contact sheet and show it in an Image Editor."""
    from .preview_render import load_image, show_image

    image = load_image(CONTACT_SHEET, path)
    show_image(context, image)
    return image
