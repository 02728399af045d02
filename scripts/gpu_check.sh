#!/usr/bin/env bash
# The GPU check of issue 12, for a bare machine with one NVIDIA GPU (about 8 minutes there):
#   bash scripts/gpu_check.sh [--cpu-smoke] [--out FILE.md] [--only STEP,...]
# It installs what it needs (a Python 3.11 venv with bpy, a CUDA torch and this project, and the
# EGL libraries for headless EEVEE) unless .venv already has them, then runs scripts/gpu_check.py:
# Cycles on OptiX, CUDA and CPU; farm render --per-gpu 1, 2, 4; EEVEE through EGL; the paper's
# captioner architecture at batch 1, 16, 64; farm render --caption against each stage alone.
# The markdown table goes to stdout and to --out (default gpu_check.md). The first step that
# fails stops the run with "gpu_check: FAILED at <step>: <why>" and exit code 1.
# --cpu-smoke runs every step at toy sizes on the CPU (CI runs it: tests/test_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "gpu_check: FAILED at setup: $*" >&2; exit 1; }
smoke=0
for arg in "$@"; do [ "$arg" = "--cpu-smoke" ] && smoke=1; done

has_all() {  # the interpreter $1 has everything the steps import
  [ -x "$1" ] && "$1" -c "import bpy, torch, transformers, farm, captioner" >/dev/null 2>&1
}

PY=""
for candidate in "${MVCAP_PYTHON:-}" .venv/bin/python .venv-gpucheck/bin/python; do
  if [ -n "$candidate" ] && has_all "$candidate"; then PY="$candidate"; break; fi
done
if [ -z "$PY" ]; then
  echo "gpu_check: setup: installing a Python 3.11 venv in .venv-gpucheck (bpy 5.0.1 needs 3.11)" >&2
  if ! command -v python3.11 >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || fail "python3.11 is missing and there is no apt-get to install it"
    { apt-get update -qq && apt-get install -y -qq python3.11 python3.11-venv; } >/dev/null \
      || fail "apt-get could not install python3.11"
  fi
  python3.11 -m venv .venv-gpucheck || fail "python3.11 -m venv failed"
  PY=.venv-gpucheck/bin/python
  # torch from the package index's default build (CUDA on Linux x86-64), pinned like the Makefile's
  "$PY" -m pip install -q --upgrade pip >/dev/null || fail "pip could not upgrade itself (no package index?)"
  "$PY" -m pip install -q torch==2.13.0 || fail "pip could not install torch 2.13.0"
  "$PY" -m pip install -q -e '.[captioner]' || fail "pip could not install this project with its captioner extra"
  has_all "$PY" || fail "$PY still cannot import bpy, torch, transformers, farm and captioner"
fi

if [ "$smoke" = 0 ]; then
  command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: no NVIDIA driver on this machine (--cpu-smoke runs without a GPU)"
  if ! ldconfig -p | grep -q 'libEGL.so.1'; then  # headless EEVEE renders through EGL
    command -v apt-get >/dev/null 2>&1 || fail "libEGL.so.1 is missing and there is no apt-get to install it"
    { apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libglvnd0 libopengl0; } >/dev/null \
      || fail "apt-get could not install the EGL libraries"
  fi
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
exec "$PY" scripts/gpu_check.py "$@"
