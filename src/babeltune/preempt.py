"""Preemption and time limits under Slurm: the warning signal becomes a checkpoint and a requeue.

The Slurm script asks for ``--signal=B:USR1@MARGIN`` and ``--requeue``. On USR1 (the time limit is near) or
SIGTERM (preempted, cancelled, or requeued by ``scontrol``) babeltune stops where it is without losing
work: training finishes its step and saves a checkpoint (mid-epoch, with the data order and random state
kept), generation and judging have already kept every finished item. On USR1 the element then requeues
itself (``scontrol requeue``) up to ``slurm.max_requeues`` times and exits with ``EXIT_REQUEUED``; on SIGTERM
Slurm itself decides what comes next. A requeued element runs the same command and resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from babeltune.locks import restarts, slurm_job

EXIT_REQUEUED = 4  # stopped on Slurm's warning signal, checkpointed and requeued: it will resume
MAX_REQUEUES_ENV = "BABELTUNE_MAX_REQUEUES"  # set by the Slurm script from slurm.max_requeues


class Stopped(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or Slurm's warning signal: the work stops where it is; what is finished stays."""

    def __init__(self, how: str = "Ctrl-C", status: int = 130):
        super().__init__(how)
        self.how, self.status = how, status


class Preempted(Stopped):
    """Slurm's warning signal (USR1): stopped at a safe point, to be requeued."""

    def __init__(self, how: str = "Slurm's warning signal (USR1)"):
        super().__init__(how, EXIT_REQUEUED)


_requested: str | None = None  # the signal that asked to stop, while a checkpointable section runs
_sections = 0  # how many checkpointable sections run now (training loops)


def requested() -> str | None:
    """The signal that asked this process to stop at its next safe point, if any."""
    return _requested


def raise_if_requested() -> None:
    """Between tasks: stop now if a signal came while a checkpointable section finished its step."""
    if _requested == "USR1":
        raise Preempted()
    if _requested == "SIGTERM":
        raise Stopped("SIGTERM", 128 + signal.SIGTERM)


class checkpointable:  # noqa: N801 - used as a context manager, like a keyword
    """A section that stops at its own safe points (a training loop checks ``requested()`` each step):
    inside it the signals only ask; outside, they stop the work at once."""

    def __enter__(self) -> checkpointable:
        global _sections
        _sections += 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _sections
        _sections -= 1


def _on_signal(signum: int, frame: object) -> None:
    global _requested
    name = "USR1" if signum == signal.SIGUSR1 else "SIGTERM"
    if _sections:
        _requested = _requested or name
        return
    _requested = name
    raise_if_requested()


def install() -> None:
    """Trap SIGTERM always, and USR1 inside a Slurm job (outside one, USR1 keeps its default meaning)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_signal)
    if slurm_job() is not None:
        signal.signal(signal.SIGUSR1, _on_signal)


def requeue() -> str:
    """Requeue this Slurm job (an array element by its own ID) unless it has been requeued
    ``BABELTUNE_MAX_REQUEUES`` times already; returns what happened, in words."""
    job = slurm_job()
    if job is None:
        return "not in a Slurm job: run the same command again to resume"
    cap = int(os.environ.get(MAX_REQUEUES_ENV, "3"))
    if restarts() >= cap:
        return f"not requeued: job {job} was requeued {restarts()} times already (slurm.max_requeues: {cap})"
    try:
        out = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"scontrol requeue {job} failed: {err}"
    if out.returncode != 0:
        return f"scontrol requeue {job} failed: {(out.stderr or out.stdout).strip()}"
    return f"requeued job {job} (requeue {restarts() + 1} of at most {cap}); it resumes from its checkpoint"
