"""Several processes on one machine: the job file each process reads, the launch under torchrun or
``accelerate launch`` (each process runs ``python -m babeltune.train JOB.yaml OUT_DIR``), and the check that the
launcher started as many processes as the job counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babeltune.io import atomic_write_text
from babeltune.registry import BabeltuneError
from babeltune.settings import dump_yaml


def write_job_file(job, mixture: Path, path: Path) -> None:
    """A job file that ``python -m babeltune.train`` runs (the task's job.yaml has the same shape)."""
    atomic_write_text(path, dump_yaml({"inputs": {"mixture": {"path": str(mixture)}}, "job": job}))


def launch_distributed(job, mixture: Path, out_dir: Path) -> None:
    """Run this job with ``job.train.nproc`` processes on this machine: under torchrun (data-parallel), or
    ``accelerate launch`` with the ``train.accelerate_config`` it names (FSDP, ZeRO)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    job_file = out_dir / "torchrun_job.yaml"
    write_job_file(job, mixture, job_file)
    n, config = job.train.nproc, job.train.accelerate_config
    launcher = (["accelerate.commands.launch", "--config_file", config, "--num_processes", str(n)] if config
                else ["torch.distributed.run", "--standalone", f"--nproc_per_node={n}"])  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", *launcher, "-m", "babeltune.train", str(job_file), str(out_dir)]
    )
    if done.returncode != 0:
        raise BabeltuneError(f"train {out_dir.name}: the {launcher[0].split('.')[0]} launch of {n} processes failed "
                             f"(exit status {done.returncode}); its error is above")  # fmt: skip


def check_world(nproc: int, world: int) -> None:
    """The processes a launcher started are the ones the job's key counts (they set the global batch).

    >>> check_world(2, 1)
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: train.nproc is 2 but 1 process(es) were started: the launcher must start train.nproc processes (an accelerate config for CPUs starts one; use torchrun there)
    """
    if world != nproc:
        raise BabeltuneError(f"train.nproc is {nproc} but {world} process(es) were started: the launcher must start "
                             "train.nproc processes (an accelerate config for CPUs starts one; use torchrun there)")  # fmt: skip
