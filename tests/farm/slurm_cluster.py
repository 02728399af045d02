"""A real one-node Slurm cluster for the tests: Debian's slurm-wlm (slurmctld, slurmd) and munge,
configured in a temporary folder, started as root, stopped after.

Its own munged (private key and socket, `AuthInfo=socket=...`) and its own ports, so nothing
on the machine is touched. Client commands (sbatch, squeue, scontrol) find it through
`SLURM_CONF`, which `env()` sets. scripts/install_system_deps.sh installs the packages.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..ports import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo")


def why_not_available() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing; scripts/install_system_deps.sh "
                "installs slurm-wlm and munge as root)")
    if os.geteuid() != 0:
        return "slurmd must run as root to start job steps, and this test is not root"
    return None


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.munge = root / "munge"
        self.pids: list[Path] = []

    def env(self, base: dict | None = None) -> dict:
        return {**(os.environ if base is None else base), "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, env=self.env(), timeout=timeout)

    def start(self) -> None:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True)
        self.munge.mkdir(mode=0o700)
        key = self.munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._daemon("munged", "--force", f"--socket={self.munge / 'munge.sock'}", f"--key-file={key}",
                     f"--pid-file={self.munge / 'munged.pid'}", f"--log-file={self.munge / 'munged.log'}",
                     f"--seed-file={self.munge / 'munged.seed'}", pid=self.munge / "munged.pid")
        self.conf.write_text(self._config())
        self._daemon("slurmctld", "-f", str(self.conf), pid=self.root / "slurmctld.pid")
        self._daemon("slurmd", "-f", str(self.conf), pid=self.root / "slurmd.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            state = self.run("sinfo", "-h", "-o", "%T").stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test Slurm node did not come up (state {state!r}):\n{self.logs()}")

    def _config(self) -> str:
        host, r = socket.gethostname(), self.root
        return "\n".join([
            "ClusterName=mvcaptest", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.munge / 'munge.sock'}",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}", f"SlurmdLogFile={r / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2", "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none", "KillWait=10",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])

    def _daemon(self, name: str, *args: str, pid: Path) -> None:
        done = subprocess.run([name, *args], capture_output=True, text=True, env=self.env(), timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{name} did not start: {done.stderr.strip()}\n{self.logs()}")
        self.pids.append(pid)

    def logs(self) -> str:
        parts = []
        for log in (self.root / "slurmctld.log", self.root / "slurmd.log", self.munge / "munged.log"):
            if log.exists():
                parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the daemons this cluster started (by their pid files), newest first."""
        for pid_file in reversed(self.pids):
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()

    def queue(self) -> list[str]:
        """`squeue` lines (job id, state), empty when no job is pending or running."""
        done = self.run("squeue", "-h", "-o", "%i %T")
        if done.returncode != 0:
            raise RuntimeError(f"squeue failed: {done.stderr.strip()}")
        return done.stdout.strip().splitlines()
