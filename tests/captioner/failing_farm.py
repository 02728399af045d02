"""`python -m tests.captioner.failing_farm FARM_ARGS...`: the real `farm` command line whose
`farm render --caption` starts the failing captioner (tests/captioner/failing_captioner.py: the
real `captioner serve`, its model raising on every generate call) instead of the real one."""
from __future__ import annotations

import sys

import farm.local_processes


def main(argv: list[str]) -> None:
    farm.local_processes.captioner_command = lambda: [sys.executable, "-m", "tests.captioner.failing_captioner"]
    from farm.cli import main as farm_main

    farm_main(argv, prog_name="farm")


if __name__ == "__main__":
    main(sys.argv[1:])
