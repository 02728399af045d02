"""`python -m tests.captioner.failing_captioner CAPTIONER_ARGS...`: the real `captioner` command
line whose model raises on every generate call, like a model that runs out of GPU memory on every
batch or a broken checkpoint that loads but cannot run.

The model is loaded by the real loading code (pass a tiny model from tiny_models.py as --model);
only its backend's `generate` is replaced, here, before the CLI looks `load_backend` up.
"""
from __future__ import annotations

import sys

import captioner.models

GENERATE_ERROR = "CUDA out of memory. Tried to allocate 20.00 GiB (test: generate always raises)"


def install() -> None:
    real_load = captioner.models.load_backend

    def load_backend(*args, **kwargs):
        backend = real_load(*args, **kwargs)

        def generate(images, prompts, prefixes=None):
            raise RuntimeError(GENERATE_ERROR)

        backend.generate = generate
        return backend

    captioner.models.load_backend = load_backend


def main(argv: list[str]) -> None:
    install()
    from captioner.cli import main as captioner_main

    captioner_main(argv, prog_name="captioner")


if __name__ == "__main__":
    main(sys.argv[1:])
