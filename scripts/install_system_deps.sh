#!/usr/bin/env bash
# Installs the Debian packages that the GUI, browser and Slurm tests use, when they are missing
# (Slurm: slurm-wlm and munge; tests/farm/slurm_cluster.py runs them as a one-node cluster).
# Tests that need them skip with a reason when they are absent (for example without root).
set -u
need=()
command -v blender >/dev/null 2>&1 || need+=(blender)
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb xauth)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# What Debian's blender lacks for the add-on (README, Blender add-on): numpy, pyzmq and Pillow.
for pkg in python3-numpy python3-zmq python3-pil; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
{ command -v slurmctld && command -v slurmd && command -v sbatch; } >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_system_deps: not root; skipping ${need[*]} (GUI/browser/Slurm tests will skip)"; exit 0; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "install_system_deps: apt-get failed for ${need[*]} (GUI/browser/Slurm tests will skip)"
exit 0
