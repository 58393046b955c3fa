"""A real one-node Slurm cluster for the tests: Debian's slurm-wlm and munge, started as root in a folder of
the test's own (config, state, logs), and stopped again. Commands see it through ``SLURM_CONF``.

Run as a script to start one by hand: ``python tests/slurm_cluster.py /tmp/cluster`` prints the
``SLURM_CONF`` to export; ``python tests/slurm_cluster.py /tmp/cluster stop`` stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


def missing_binaries() -> list[str]:
    found = {b: shutil.which(b) or next((p for p in (f"/usr/sbin/{b}",) if os.path.exists(p)), None)
             for b in BINARIES}  # fmt: skip
    return [b for b, path in found.items() if path is None]


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def slurm_conf(root: Path, cpus: int, memory_mb: int) -> str:
    host = socket.gethostname()
    return f"""ClusterName=babeltune-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmdSpoolDir={root}/spool
StateSaveLocation={root}/state
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2,sched_min_interval=100000
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
AuthInfo=cred_expire=10
MinJobAge=600
InactiveLimit=0
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """Start with ``Cluster(folder).start()``; ``env`` is what a command needs to reach it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self._munged = False

    def start(self, timeout: float = 60) -> Cluster:
        for sub in ("spool", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(slurm_conf(self.root, os.cpu_count() or 1, 4096))
        self._start_munge()
        subprocess.run([_binary("slurmctld"), "-f", str(self.conf)], check=True, env=self.env)
        subprocess.run([_binary("slurmd"), "-f", str(self.conf)], check=True, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the Slurm node did not come up: {self.log_tail()}")

    def _start_munge(self) -> None:
        probe = subprocess.run(["munge", "-n"], capture_output=True)
        if probe.returncode == 0:
            return  # a munged already runs (the machine's own): share it
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _binary("munged")], check=True)
        self._munged = True

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / name
            if path.exists():
                out += [f"--- {name}", *path.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(out)

    def squeue(self) -> str:
        return subprocess.run(["squeue", "-h", "-o", "%i %T %j"], capture_output=True, text=True,
                              env=self.env).stdout  # fmt: skip

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is pending or running; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.squeue().strip():
                return True
            time.sleep(1)
        return False

    def stop(self) -> None:
        subprocess.run(["scancel", "--user=root"], capture_output=True, env=self.env)
        for name in ("slurmd.pid", "slurmctld.pid"):
            pid = self.root / name
            if pid.exists():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pid.read_text().strip()), signal.SIGTERM)
        if self._munged:
            subprocess.run(["pkill", "-x", "munged"], capture_output=True)
        time.sleep(1)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    cluster = Cluster(folder)
    if sys.argv[2:] == ["stop"]:
        cluster.stop()
    else:
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
