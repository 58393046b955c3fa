"""The Slurm script of a grid: ``bash FILE`` submits a prep job (data, translation, mixtures), one array per
resource size with an element per grid point (after the prep job), and a report job after every element
whatever became of it; Slurm runs the same file as each of those jobs.

Each grid point's tasks have exactly one owner, its array element, and the shared preparation has one, the
prep job: correctness needs no lock shared across hosts. Elements ask for ``--requeue`` and the warning
signal, append to their log across requeues, and resume where they stopped. Every ``sbatch`` is checked: a
refusal stops the script with sbatch's own message.
"""

from __future__ import annotations

import fnmatch
import math
import shlex
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from babeltune.experiment import SHARED, GridPoint, Plan
from babeltune.io import atomic_write_text
from babeltune.methods import METHODS
from babeltune.planning import gpu_memory_gb
from babeltune.preempt import MAX_REQUEUES_ENV

HOURS = (2, 4, 8, 12, 24, 48, 72, 120, 168)  # time limits a run is rounded up to: few distinct requests
MEMORY_GB = (32, 64, 128, 256, 512)
ROLE = "BABELTUNE_SLURM_ROLE"  # which of the script's jobs this is: prep, point or report


def _tier(value: float, tiers: tuple[int, ...]) -> int:
    return next((t for t in tiers if t >= value), math.ceil(value))


def _hours(time: str) -> str:
    return f"{time}:00:00" if isinstance(time, int) else time


@dataclass(frozen=True)
class Resources:
    gpus: int
    cpus: int
    memory: str
    time: str

    def options(self, gpu_type: str | None = None) -> list[str]:
        gres = [f"--gres=gpu:{gpu_type + ':' if gpu_type else ''}{self.gpus}"] if self.gpus else []
        return [*gres, f"--cpus-per-task={self.cpus}", f"--mem={self.memory}", f"--time={self.time}"]


def resources(plan: Plan, point: GridPoint, row: dict) -> Resources:
    """What one grid point asks Slurm for: the site's settings where given, else sized from its model:
    GPUs for the processes it trains with, host memory to load the weights in fp32 twice over, and time for
    training at the estimate (+50 %) plus an hour for generation and evaluation, rounded up to a tier so
    that runs of similar size share one array."""
    site = plan.cfg.slurm
    nproc = point.train.job.train.nproc
    gpus = site.gpus if site.gpus is not None else nproc
    size = row["parameters_b"] if row["parameters_b"] is not None else 1.0
    memory = site.memory or f"{_tier(size * 4 * 2 + 8, MEMORY_GB)}G"
    pattern = next((p for p in site.times if fnmatch.fnmatchcase(point.name, p)), None)
    estimate = (row["gpu_hours"] if row["gpu_hours"] is not None else 1.0) / max(gpus, 1) * 1.5 + 1
    time = site.times[pattern] if pattern else site.time or f"{_tier(estimate, HOURS)}:00:00"
    return Resources(gpus, site.cpus or 8 * max(gpus, 1), memory, time)


def too_big(plan: Plan, rows: list[dict]) -> list[str]:
    """The models and methods whose estimated GPU memory per process exceeds one GPU of the site, a line each.
    Data parallelism (torchrun) puts the whole state on every GPU; an accelerate config with FSDP or ZeRO
    (``train.accelerate_config``) divides it between the ``nproc`` processes."""
    found: dict[tuple[str, str], tuple[float, int, int]] = {}
    site = plan.cfg.slurm.gpu_memory_gb
    for point, row in zip(plan.points, rows, strict=True):
        need = gpu_memory_gb(row["parameters_b"], point.method)
        train = point.train.job.train
        shared_by = train.nproc if train.accelerate_config else 1
        if need is not None and need / shared_by > site:
            key = (point.name.rsplit("/", 1)[0], point.method)
            found[key] = (need, math.ceil(need / site), found.get(key, (0, 0, 0))[2] + 1)
    return [
        f"{run} ({n} grid points) needs about {need:.0f} GB of GPU memory, more than one {site:g} GB GPU holds: "
        f"shard it over {gpus} GPUs (train.{METHODS.get(method).overrides.get('nproc', 'nproc')}={gpus} and "
        "train.accelerate_config=docs/accelerate/fsdp.yaml), or set slurm.gpu_memory_gb"
        for (run, method), (need, gpus, n) in found.items()
    ]


def _ranges(ids: list[int]) -> str:
    """Slurm's array syntax for a sorted list of IDs.

    >>> _ranges([0, 1, 2, 5, 7, 8])
    '0-2,5,7-8'
    """
    out, start = [], ids[0]
    for prev, cur in zip(ids, [*ids[1:], None], strict=True):
        if cur != prev + 1:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(out)


def _site_options(plan: Plan) -> list[str]:
    site = plan.cfg.slurm
    named = [("partition", site.partition), ("account", site.account), ("qos", site.qos),
             ("constraint", site.constraint)]  # fmt: skip
    return [f"--{name}={value}" for name, value in named if value] + list(site.extra)


def slurm_script(plan: Plan, config: Path, overrides: list[str], rows: list[dict], path: Path,
                 points: list[int] | None = None, prep: bool = True) -> str:  # fmt: skip
    """The script for the grid points ``points`` (default: all), with a prep job unless ``prep`` is False
    (the preparation is done already)."""
    cfg = plan.cfg
    ids = list(range(len(plan.points))) if points is None else points
    groups: dict[Resources, list[int]] = defaultdict(list)
    for i in ids:
        groups[resources(plan, plan.points[i], rows[i])].append(i)
    logs = cfg.run_dir.resolve() / "slurm"
    command = shlex.join([sys.executable, "-m", "babeltune"])
    args = shlex.join([str(config.resolve()), *overrides])
    common = " ".join(shlex.quote(o) for o in ["--open-mode=append", *_site_options(plan)])
    throttle = f"%{cfg.slurm.throttle}" if cfg.slurm.throttle else ""
    site_gpu = cfg.slurm.gpu_type
    arrays = "\n".join(
        f'arrays+=("$(submit --export=ALL,{ROLE}=point --job-name=babeltune-{cfg.name} {common} '
        f"--array={_ranges(sorted(members))}{throttle} --requeue --signal=B:USR1@{cfg.slurm.signal_margin} "
        f'--output={logs}/point-%A_%a.out {" ".join(need.options(site_gpu))} $after "$self")")'
        f'  # {len(members)} grid point(s)\nsubmitted+=("${{arrays[-1]}}")'
        for need, members in sorted(groups.items(), key=lambda kv: kv[1][0])
    )
    prep_cpus = cfg.slurm.cpus or 8
    prep_job = (
        f"prep=$(submit --export=ALL,{ROLE}=prep --job-name=babeltune-{cfg.name}-prep {common} "
        f"--output={logs}/prep-%j.out --cpus-per-task={prep_cpus} --mem={cfg.slurm.memory or '32G'} "
        f"--time={cfg.slurm.prep_time} \"$self\")\nsubmitted+=(\"$prep\")\nafter=--dependency=afterok:$prep"
        if prep else 'prep="(none: the preparation is done)"\nafter='
    )  # fmt: skip
    setup = "\n".join(cfg.slurm.setup)
    scope = "every grid point" if points is None else f"{len(ids)} unfinished grid point(s)"
    return f"""#!/bin/bash
# The grid of {config}: {scope} as Slurm array elements ({len(ids)} of {len(plan.points)}), after a prep job,
# then a report of whatever finished. Written by `babeltune plan {config} --slurm`.
# Submit with: bash {path}      Watch with: babeltune status {cfg.run_dir}
# Each element runs `babeltune run CONFIG --task ID --prepared`; on Slurm's warning signal (USR1, {cfg.slurm.signal_margin} s
# before the time limit) it checkpoints, requeues itself (at most {cfg.slurm.max_requeues} times) and resumes.
set -euo pipefail
cd {shlex.quote(str(Path.cwd()))}
export {MAX_REQUEUES_ENV}={cfg.slurm.max_requeues}
{setup}
case "${{{ROLE}:-submit}}" in
  prep) exec {command} mix {args} ;;
  point) exec {command} run {args} --task "$SLURM_ARRAY_TASK_ID" --prepared ;;
  report) exec {command} report {args} --done-only ;;
esac
self={shlex.quote(str(path.resolve()))}
mkdir -p {shlex.quote(str(logs))}
submitted=()
submit() {{  # prints the job ID; a refusal cancels what this script submitted and stops it with sbatch's words
  local out
  if ! out=$(sbatch --parsable "$@" 2>&1); then
    echo "babeltune: sbatch refused a job: $out" >&2
    if [ ${{#submitted[@]}} -gt 0 ]; then
      scancel "${{submitted[@]}}" && echo "babeltune: cancelled the jobs submitted before it: ${{submitted[*]}}" >&2
    fi
    exit 1
  fi
  echo "${{out%%;*}}"
}}
{prep_job}
arrays=()
{arrays}
report=$(submit --export=ALL,{ROLE}=report --job-name=babeltune-{cfg.name}-report {common} \\
  --output={logs}/report-%j.out --cpus-per-task={prep_cpus} --mem={cfg.slurm.memory or "32G"} --time={cfg.slurm.report_time} \\
  --dependency=afterany:"$(IFS=:; echo "${{arrays[*]}}")" "$self")
echo "submitted: prep $prep, arrays ${{arrays[*]}}, report $report; logs in {logs}; babeltune status {cfg.run_dir}"
"""


def write_slurm(plan: Plan, config: Path, overrides: list[str], rows: list[dict], path: Path,
                only_todo: bool = False) -> str:  # fmt: skip
    """Write the script (and the log folder Slurm writes to, which must exist when jobs start); returns
    what it covers, in words."""
    points, prep = None, True
    if only_todo:
        points = [i for i, p in enumerate(plan.points) if not p.evaluate.done]
        prep = any(not t.done for t in plan.tasks if t.stage in SHARED)
        if not points:
            return "nothing to do: every grid point is done (no script written)"
    (plan.cfg.run_dir / "slurm").mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, slurm_script(plan, config, overrides, rows, path, points, prep))
    path.chmod(path.stat().st_mode | 0o111)
    covered = len(plan.points) if points is None else len(points)
    arrays = len({resources(plan, plan.points[i], rows[i]) for i in (points or range(len(plan.points)))})
    return (f"{'a prep job, ' if prep else ''}{covered} grid point(s) in {arrays} array(s), then the report "
            "(after every element, whatever its outcome)")  # fmt: skip
