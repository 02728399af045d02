"""A render child that misbehaves on purpose, for the farm's fault tests.

It is the real child (farm.worker_child.child_main) with each task wrapped: `fail_all` fails every
task with a worker error (a broken machine: the blocklist), `no_image` makes Blender's render
write nothing (a broken machine the render code itself notices: "render produced no image"),
`crash` uids end the child abruptly (crash handling), `hang` uids sleep forever (the worker's
timeout), and `delay_s` sleeps after each rendered view (a slow render to kill mid-way).
Otherwise the task runs for real.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from farm.worker_child import Progress, child_main, run_task


@dataclass(frozen=True)
class Chaos:
    hang: tuple[str, ...] = ()
    crash: tuple[str, ...] = ()
    fail_all: bool = False
    delay_s: float = 0.0
    no_image: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Chaos:
        data = json.loads(text)
        return cls(hang=tuple(data["hang"]), crash=tuple(data["crash"]), fail_all=data["fail_all"],
                   delay_s=data["delay_s"], no_image=data["no_image"])

    def run_task(self, task: dict, out_dir: str, device: str, progress: Progress) -> dict:
        uid = task["asset"]["uid"]
        if self.fail_all:
            raise RuntimeError("this chaos worker fails every task")
        if uid in self.crash:
            os._exit(70)
        if uid in self.hang:
            while True:
                time.sleep(3600)
        if self.delay_s > 0:
            progress = self.slowed(progress)
        if self.no_image:  # the render operator says "finished" and writes no file
            import types

            import bpy

            bpy.ops.render = types.SimpleNamespace(render=lambda **_: {"FINISHED"})
        return run_task(task, out_dir, device, progress)

    def slowed(self, report: Progress) -> Progress:
        def progress(done: int, total: int) -> None:
            report(done, total)
            time.sleep(self.delay_s)

        return progress


def chaos_child_main(chaos: Chaos, conn, device: str) -> None:
    """The worker's child target, as functools.partial(chaos_child_main, chaos)."""
    child_main(conn, device, run=chaos.run_task)
