#!/usr/bin/env bash
# Installs the Debian packages that the GUI and browser tests use, when they are missing.
# Tests that need them skip with a reason when they are absent (for example without root).
set -u
need=()
command -v blender >/dev/null 2>&1 || need+=(blender)
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb xauth)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_system_deps: not root; skipping ${need[*]} (GUI/browser tests will skip)"; exit 0; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "install_system_deps: apt-get failed for ${need[*]} (GUI/browser tests will skip)"
exit 0
