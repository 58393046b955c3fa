"""Tasks: the units a plan is made of, keyed by exactly what they run with, done only when complete, each
under its own lock so that many processes can share one run directory.

A task's key is the hash of its typed job (the fields that can change a result) and of its inputs' content
keys; its folder is named by that key and holds ``job.yaml`` (what it ran with). When its work returns, it
writes ``.done.json``: whether it is complete (no failed items), which items failed, and a content key per
output part (the hash of the file it wrote). Downstream keys are built from those content keys, so a task
built on an incomplete input is redone once that input completes, and one whose input came out the same
is not redone at all.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from babeltune import preempt
from babeltune.io import atomic_write_text, out_of_room, read_json, sha256_file, write_json
from babeltune.locks import locked, me
from babeltune.registry import BabeltuneError
from babeltune.secrets import redact
from babeltune.settings import content_key, dump_yaml, from_dict, load_yaml, to_dict
from babeltune.version import __version__

DONE = ".done.json"
JOB = "job.yaml"
EXIT_INCOMPLETE = 3  # the exit status of a run that finished with failed items (a rerun retries them)


@dataclass
class Outcome:
    """What a task's work reports: the items that failed (the next run retries exactly those) and the
    names of its output parts (one unnamed part unless the stage writes several, as mix does)."""

    failed: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=lambda: [""])


@dataclass(frozen=True)
class Output:
    """One part of a task's output, as a downstream task sees it: where it lies and what it holds."""

    task: Task
    part: str = ""

    @property
    def path(self) -> Path:
        return self.task.locate(self.task.out_dir, self.part)

    @property
    def key(self) -> str | None:
        """The content key of this part, or None while its task has not run."""
        record = self.task.record
        return None if record is None else record["outputs"].get(self.part)


class Job(Protocol):
    """The one task contract: a stage's typed job does its work from its input files into ``out_dir``, so
    any task folder's ``job.yaml`` can be run alone (``babeltune run-task``), by any launcher."""

    def work(self, inputs: dict[str, Path], out_dir: Path) -> object:
        """Do the job; may return an ``Outcome`` (failed items, output parts)."""

    def locate(self, folder: Path, part: str) -> Path:
        """Where a part of the output lies in the task's folder."""


@dataclass(frozen=True)
class Given:
    """An input known by its path and content key alone (a task run from its ``job.yaml``)."""

    path: Path
    key: str
    task: None = None


@dataclass(eq=False)
class Task:
    stage: str  # the stage command that runs it: data, translate, mix, train, generate, evaluate, report
    name: str  # what users see, e.g. "smollm2-135m/lora/mono-es"
    job: Job  # the typed job: its result fields make the key; saved as job.yaml; it does the work
    inputs: dict[str, Output | Given] = field(default_factory=dict)
    folder: str = ""  # top folder in the run directory (default: the stage)
    slug: str = ""  # prefix of the task folder's name, e.g. "smollm2-135m-lora-mono-es"
    needs: dict[str, Path] = field(default_factory=dict)  # files the work reads, by the field naming them
    partial: bool = False  # does only part of the work (a shard of prompts): never recorded as done
    run_dir: Path = Path("runs/experiment")  # set by the plan
    work: Callable[[Task], object] | None = None  # instead of the job's own work (a shard of it)
    _record: dict | None = field(default=None, repr=False)

    def locate(self, folder: Path, part: str) -> Path:
        return self.job.locate(folder, part)

    def do_work(self) -> object:
        if self.work is not None:
            return self.work(self)
        return self.job.work({role: Path(i.path) for role, i in self.inputs.items()}, self.out_dir)

    def output(self, part: str = "") -> Output:
        return Output(self, part)

    @property
    def ready(self) -> bool:
        """Whether every input has run, so this task's key is known."""
        return all(i.key is not None for i in self.inputs.values())

    @property
    def key(self) -> str | None:
        if not self.ready:
            return None
        inputs = {role: i.key for role, i in sorted(self.inputs.items())}
        return content_key(__version__, self.stage, self.job, inputs)

    @property
    def plan_key(self) -> str:
        """What the task is before anything has run: its job and its inputs' plan keys (two tasks with the
        same plan key are one task, whatever names they were planned under)."""
        inputs = {role: [i.task.plan_key, i.part] if i.task is not None else i.key
                  for role, i in sorted(self.inputs.items())}  # fmt: skip
        return content_key(__version__, self.stage, self.job, inputs)

    @property
    def out_dir(self) -> Path:
        key = self.key
        if key is None:
            raise BabeltuneError(f"{self.stage}: {self.name}: its inputs have not been made yet")
        return self.run_dir / (self.folder or self.stage) / (f"{self.slug}-{key}" if self.slug else key)

    @property
    def record(self) -> dict | None:
        """The task's ``.done.json`` (a finished run, complete or not), or None."""
        if self._record is not None and self._record["key"] == self.key:
            return self._record
        if not self.ready:
            return None
        path = self.out_dir / DONE
        self._record = read_json(path) if path.exists() else None
        return self._record

    @property
    def done(self) -> bool:
        record = self.record
        return record is not None and record["complete"]

    @property
    def status(self) -> str:
        """done, incomplete (with failed items), to do, or "waits for STAGE" when an input is still to be
        made (found done once it is, if that input comes out the same)."""
        if not self.ready:
            return f"waits for {next(i.task.stage for i in self.inputs.values() if i.key is None)}"
        record = self.record
        if record is None:
            return "to do"
        return "done" if record["complete"] else f"incomplete: {record['failed']} failed"


def file_key(path: Path) -> str:
    """The content key of a file: a hash of its bytes."""
    return sha256_file(path)[:16]


def _part_key(task: Task, part: str) -> str:
    where = task.locate(task.out_dir, part)
    return file_key(where) if where.is_file() else content_key(task.key, part)


def job_yaml(task: Task) -> str:
    """What the task runs with: its job (plumbing included, and its type) and its inputs, as job.yaml holds
    them; ``from_job_file`` reads it back."""
    inputs = {role: {"key": i.key, "path": str(i.path)} for role, i in sorted(task.inputs.items())}
    head = f"# {task.stage}: {task.name}; key {task.key} = hash of the job's result fields and the inputs' keys\n"
    kind = f"{type(task.job).__module__}:{type(task.job).__qualname__}"
    return head + dump_yaml({"stage": task.stage, "name": task.name, "kind": kind, "inputs": inputs,
                             "job": to_dict(task.job)})  # fmt: skip


def from_job_file(folder: Path) -> Task:
    """The task whose folder is ``folder`` (``RUN/STAGE/[SLUG-]KEY``), rebuilt from its ``job.yaml``; its key
    must come out as the folder's name says, or the file was edited (or made by another release)."""
    path = Path(folder) / JOB
    if not path.is_file():
        raise BabeltuneError(f"{folder}: not a task folder (no {JOB})")
    data = load_yaml(path.read_text(encoding="utf-8"))
    kind = str(data.get("kind", ""))
    module, _, name = kind.partition(":")
    if not module.startswith("babeltune.") or not name:
        raise BabeltuneError(
            f"{path}: kind: {kind!r} is not a babeltune job type (written by an older release?)"
        )
    job = from_dict(getattr(importlib.import_module(module), name), data["job"], f"{path}: job")
    inputs = {role: Given(Path(i["path"]), i["key"]) for role, i in data.get("inputs", {}).items()}
    folder = Path(folder).resolve()
    slug, _, key = folder.name.rpartition("-")
    task = Task(data["stage"], data.get("name", folder.name), job, inputs, folder=folder.parent.name, slug=slug,
                run_dir=folder.parents[1])  # fmt: skip
    if task.key != key:
        raise BabeltuneError(f"{path}: the job and inputs it holds give key {task.key}, not {key} as the folder "
                             "says: edited, or written by another release of babeltune")  # fmt: skip
    return task


@contextlib.contextmanager
def task_lock(task: Task, log: Callable[[str], None]) -> Iterator[None]:
    """Hold this task alone: another process that needs it waits, then finds it done."""
    path = lock_path(task)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BabeltuneError(f"output_dir: cannot write to {task.run_dir}: {err.strerror}") from None
    with locked(
        path, lambda holder: log(f"waiting for {describe_holder(holder)} to finish {task.stage}: {task.name}")
    ):
        yield


def lock_path(task: Task) -> Path:
    return task.run_dir / ".locks" / f"{task.folder or task.stage}-{task.out_dir.name}.lock"


def failure_path(task: Task) -> Path:
    """Where a task that raised leaves its last error (outside its folder, which a failure removes)."""
    return task.run_dir / ".failures" / f"{task.folder or task.stage}-{task.out_dir.name}.json"


def record_failure(task: Task, err: BaseException) -> None:
    """Keep the error line of a task that raised, for ``babeltune status``; never hides the error itself."""
    text = str(err) if isinstance(err, BabeltuneError) else f"{type(err).__name__}: {err}"
    line = redact(text.strip().splitlines()[0] if text.strip() else type(err).__name__)[:500]
    with contextlib.suppress(OSError):
        write_json(failure_path(task), {"error": line, "at": time.time()} | {
            k: v for k, v in me().items() if k in ("host", "pid", "slurm_job")})  # fmt: skip


def describe_holder(holder: dict | None) -> str:
    """Who holds a lock, in words.

    >>> describe_holder({"host": "node7", "pid": 42, "slurm_job": "99_3"})
    'another babeltune process (Slurm job 99_3 on node7, pid 42)'
    """
    if not holder:
        return "another babeltune process"
    job = f"Slurm job {holder['slurm_job']} on " if holder.get("slurm_job") else ""
    return f"another babeltune process ({job}{holder.get('host')}, pid {holder.get('pid')})"


@dataclass
class Summary:
    """What an execution did: seconds per stage, and the tasks that finished with failed items."""

    ran: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    incomplete: list[tuple[Task, int]] = field(default_factory=list)

    @property
    def failed_items(self) -> int:
        return sum(n for _, n in self.incomplete)

    def failure_line(self) -> str | None:
        if not self.incomplete:
            return None
        where = ", ".join(f"{t.stage} {t.name} ({n})" for t, n in self.incomplete)
        return f"{self.failed_items} items failed ({where}); rerun to retry them"


def check_needs(tasks: list[Task]) -> None:
    """Every file that a task still to run will read exists, before anything runs."""
    missing = [f"{where}: {problem}" for t in tasks if not t.done for where, path in t.needs.items()
               if (problem := _unreadable(Path(path)))]  # fmt: skip
    if missing:
        raise BabeltuneError("; ".join(dict.fromkeys(missing)))


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read (no such file, a symlink loop, no permission), or None."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"no such file or folder {str(path)!r}"
    except OSError as err:
        return f"cannot read {str(path)!r}: {err.strerror}"
    return None


def pending(tasks: list[Task]) -> list[Task]:
    """The tasks to run: those not done, and those that read one of them (their key follows its output,
    so whether they are done is known only once it has run: then some are found done after all)."""
    out: list[Task] = []
    for task in tasks:
        if not task.done or any(i.task in out for i in task.inputs.values()):
            out.append(task)
    return out


def execute(tasks: list[Task], log: Callable[[str], None] = print) -> Summary:
    """Run every task that is not done, in order (inputs come before the tasks that read them)."""
    check_needs(tasks)
    summary = Summary()
    todo = pending(tasks)
    log(f"{len(tasks) - len(todo)} of {len(tasks)} tasks already done; running {len(todo)}")
    for task in todo:
        preempt.raise_if_requested()  # a signal that came during the last task's final step
        with task_lock(task, log):
            task._record = None  # another process may have finished it while we waited
            if task.done:
                continue
            summary.ran += 1
            log(f"[{summary.ran}/{len(todo)}] {task.stage}: {task.name}")
            outcome, seconds = _run(task)
        summary.seconds[task.stage] = summary.seconds.get(task.stage, 0.0) + seconds
        if outcome is not None and outcome.failed:
            summary.incomplete.append((task, len(outcome.failed)))
    return summary


def _run(task: Task) -> tuple[Outcome | None, float]:
    out = task.out_dir
    start = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / JOB, job_yaml(task))
        result = task.do_work()
        outcome = result if isinstance(result, Outcome) else Outcome()
    except Exception as err:
        _forget_if_empty(out)
        record_failure(task, err)
        if out_of_room(err):
            raise BabeltuneError(f"cannot write {out}: no space left on the device; finished tasks are kept, "
                                 "rerun when there is room") from None  # fmt: skip
        if isinstance(err, OSError) and err.errno in (errno.EROFS, errno.EACCES):
            raise BabeltuneError(
                f"cannot write {err.filename or out}: {err.strerror}; finished tasks are kept"
            ) from None
        raise
    except BaseException:
        _forget_if_empty(out)
        raise
    seconds = round(time.perf_counter() - start, 2)
    if task.partial:
        return None, seconds
    record = {
        "stage": task.stage, "name": task.name, "key": task.key, "complete": not outcome.failed,
        "failed": len(outcome.failed), "failures": outcome.failed[:100],
        "outputs": {part: _part_key(task, part) for part in outcome.parts}, "seconds": seconds,
    }  # fmt: skip
    write_json(out / DONE, record)
    failure_path(task).unlink(missing_ok=True)
    task._record = record
    return outcome, seconds


def _forget_if_empty(out: Path) -> None:
    """A task that failed before writing anything (an empty log counts as nothing) leaves no folder behind."""
    if out.is_dir() and all(p.name == JOB or (p.is_file() and p.stat().st_size == 0) for p in out.iterdir()):
        shutil.rmtree(out, ignore_errors=True)
