"""`python -m tests.farm.chaos_farm CHAOS_JSON FARM_ARGS...`: the real `farm` command line whose
workers run the chaos render child (tests/farm/chaos_child.py) instead of the real one.

`farm worker` builds its Worker with that child, and `farm render` starts its local workers
through this launcher with the same chaos. The repo root must be on sys.path (the spawned render
child imports tests.farm.chaos_child): run it from there or with PYTHONPATH set.
"""
from __future__ import annotations

import functools
import sys

import farm.local_render
import farm.worker

from .chaos_child import Chaos, chaos_child_main


def install(chaos: Chaos) -> None:
    """Swap the CLI's Worker and LocalRun for ones that use the chaos child; the CLI looks them
    up in their modules, so this runs before farm.cli is imported."""
    target = functools.partial(chaos_child_main, chaos)
    command = [sys.executable, "-m", "tests.farm.chaos_farm", chaos.to_json(), "worker"]

    class ChaosWorker(farm.worker.Worker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, child_target=target, **kwargs)

    class ChaosLocalRun(farm.local_render.LocalRun):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, worker_command=command, **kwargs)

    farm.worker.Worker = ChaosWorker
    farm.local_render.LocalRun = ChaosLocalRun


def main(argv: list[str]) -> None:
    install(Chaos.from_json(argv[0]))
    from farm.cli import main as farm_main

    farm_main(argv[1:], prog_name="farm")


if __name__ == "__main__":
    main(sys.argv[1:])
