"""The ``slurm`` settings group: what a site's Slurm needs to accept the jobs. None of it changes a result."""

from __future__ import annotations

import re
from dataclasses import dataclass

from babeltune.registry import BabeltuneError, short
from babeltune.settings import setting


def _plumbing(default, help: str, **bounds):
    return setting(default, help, affects_result=False, **bounds)


TIME = re.compile(r"(\d+-)?\d+(:\d\d){0,2}")  # Slurm's forms: M, H:MM:SS, D-H, D-H:MM:SS ...
MEMORY = re.compile(r"\d+[KMGT]?")


@dataclass
class SlurmArgs:
    partition: str | None = _plumbing(None, "partition (--partition) for every job (default: the site's)")
    account: str | None = _plumbing(None, "account to charge (--account)")
    qos: str | None = _plumbing(None, "quality of service (--qos)")
    constraint: str | None = _plumbing(None, "node features (--constraint), e.g. a100|h100")
    gpus: int | None = _plumbing(
        None, "GPUs per training run (default: train.nproc, the processes a run trains with); 0: CPU only, "
        "no --gres", ge=0, le=1024)  # fmt: skip
    gpu_type: str | None = _plumbing(None, "GPU type in --gres=gpu:TYPE:N, e.g. a100")
    gpu_memory_gb: float = _plumbing(
        80, "memory of one GPU: plan flags runs whose estimated need is larger", gt=0
    )
    cpus: int | None = _plumbing(None, "CPUs per job (default: 8 per GPU, 8 without)", ge=1, le=4096)
    memory: str | None = _plumbing(None, "host memory per job, e.g. 64G (default: sized from the model)")
    time: str | None = _plumbing(
        None, "time limit per training run, e.g. 12:00:00 (default: from the estimate)"
    )
    times: dict[str, str] = _plumbing(
        {}, "time limits by run name pattern (first match wins), e.g. {'*-7b/full/*': 3-00:00:00}"
    )
    prep_time: str = _plumbing("4:00:00", "time limit of the prep job (data, translation, mixtures)")
    report_time: str = _plumbing("1:00:00", "time limit of the report job")
    throttle: int | None = _plumbing(
        None, "run at most this many array elements at once (--array=...%K)", ge=1
    )
    extra: list[str] = _plumbing([], "extra #SBATCH options for every job, e.g. ['--mail-type=FAIL']")
    setup: list[str] = _plumbing(
        [], "shell lines every job runs first, e.g. ['module load cuda', 'source .venv/bin/activate']"
    )
    max_requeues: int = _plumbing(
        3, "times an element requeues itself after the warning signal before it gives up", ge=0, le=100
    )
    signal_margin: int = _plumbing(
        300, "seconds before the time limit when Slurm sends USR1: checkpoint, requeue, exit", ge=10
    )

    def check(self, where: str) -> None:
        for name in ("time", "prep_time", "report_time", *(f"times.{k}" for k in self.times)):
            value = self.times[name[6:]] if name.startswith("times.") else getattr(self, name)
            if value is not None and not TIME.fullmatch(str(value)):
                raise BabeltuneError(
                    f"{where}.{name}: {short(value)} is not a Slurm time (e.g. 12:00:00 or 2-00:00:00)"
                )
        if self.memory is not None and not MEMORY.fullmatch(self.memory):
            raise BabeltuneError(
                f"{where}.memory: {short(self.memory)} is not a Slurm memory size (e.g. 64G)"
            )
        for line in self.extra:
            if not line.startswith("--") or "\n" in line:
                raise BabeltuneError(f"{where}.extra: {short(line)} is not one sbatch option (--name=value)")
        if any("\n" in line for line in self.setup):
            raise BabeltuneError(f"{where}.setup: one shell line per entry")
