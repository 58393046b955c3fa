"""Locks that hold on any filesystem, NFS included: a lock is a file made by an atomic exclusive create
(``O_EXCL``, which NFS honours where ``flock`` depends on mount options) naming its holder: host, pid, the
process's start time, its Slurm job, and a token.

A holder that died leaves its file behind, so a waiter decides whether it is stale: on the same host the
process is gone (or the pid now names another process); a holder that is an earlier run of this same Slurm
job (before a requeue) is gone by definition; on another host, its heartbeat (the file's mtime,
touched every ``HEARTBEAT`` seconds) is older than ``STALE_AFTER``. A stale lock is broken under a second
exclusive file, so two waiters never both break it and take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

HEARTBEAT = 30.0
STALE_AFTER = 300.0  # a holder on another host that has not touched its lock for this long is gone
BREAK_STALE_AFTER = 60.0  # a ``.break`` file left by a process that died while breaking a lock


def process_start(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (tells a reused pid from its first owner)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def slurm_job() -> str | None:
    """This process's Slurm job as ``scontrol`` names it: ``ARRAYJOB_TASK`` for an array element."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def restarts() -> int:
    """How many times Slurm has requeued this job (0 outside Slurm)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def me() -> dict:
    """Who holds a lock this process takes."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid()),
            "slurm_job": slurm_job(), "restart": restarts(), "since": time.time(),
            "token": uuid.uuid4().hex}  # fmt: skip


def read_holder(path: Path) -> dict | None:
    """The holder a lock file names, or None when it is gone or not yet written."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def alive(holder: dict, mtime: float, now: float | None = None) -> bool:
    """Whether the holder of a lock (last touched at ``mtime``) may still be at work.

    >>> import os, socket
    >>> alive({"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid())}, 0)
    True
    >>> alive({"host": "elsewhere", "pid": 1}, mtime=0, now=STALE_AFTER + 1)
    False
    """
    now = time.time() if now is None else now
    mine = slurm_job()
    if mine is not None and holder.get("slurm_job") == mine and holder.get("restart", 0) < restarts():
        return False  # an earlier run of this very job, before Slurm requeued it
    if holder.get("host") == socket.gethostname():
        started = process_start(int(holder.get("pid", -1)))
        return started is not None and started == holder.get("started")
    return now - mtime < STALE_AFTER


def state(path: Path) -> dict | None:
    """The holder of the lock at ``path`` with ``alive`` set, or None when nobody holds it."""
    holder = read_holder(path)
    if holder is None:
        return None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return holder | {"alive": alive(holder, mtime)}


def _try_create(path: Path, content: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _break_if_stale(path: Path) -> bool:
    """Remove the lock at ``path`` if its holder is gone; True when it was (or is now) free."""
    holder = read_holder(path)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return True
    if holder is None:  # being written this instant, or torn by a crash long ago
        if time.time() - mtime < BREAK_STALE_AFTER:
            return False
    elif alive(holder, mtime):
        return False
    breaker = path.with_name(path.name + ".break")
    if not _try_create(breaker, json.dumps(me())):
        with contextlib.suppress(OSError):
            if time.time() - breaker.stat().st_mtime > BREAK_STALE_AFTER:
                breaker.unlink()
        return False
    try:
        if read_holder(path) == holder:  # still the stale holder: nobody took it since we looked
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        breaker.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def locked(
    path: Path, on_wait: Callable[[dict | None], None] = lambda holder: None, poll: float = 0.5
) -> Iterator[None]:
    """Hold the lock at ``path`` for the block. ``on_wait(holder)`` is called once if another live process
    holds it first; a stale lock is broken and taken."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = me()
    waited = False
    while not _try_create(path, json.dumps(holder)):
        if _break_if_stale(path):
            continue
        if not waited:
            waited = True
            on_wait(read_holder(path))
        time.sleep(poll)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        if (read_holder(path) or {}).get("token") == holder["token"]:
            path.unlink(missing_ok=True)


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT):
        with contextlib.suppress(OSError):
            os.utime(path)


class Claims:
    """Claims on single items of paid work (a judgement, a translation), so that processes sharing a run
    directory never buy the same item twice: a claim is a lock file per item (``folder/NAME.claim``, made by
    an exclusive create, so it holds on NFS), touched while held; one whose holder is gone is taken over."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.holder = me()
        self.held: set[str] = set()
        self.guard = threading.Lock()
        self.stop = threading.Event()
        self.beat = threading.Thread(target=self._heartbeat, daemon=True)
        self.beat.start()

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.claim"

    def take(self, name: str) -> bool:
        """Claim ``name``: True when this process holds it now (free, or its holder is gone)."""
        path = self._path(name)
        taken = _try_create(path, json.dumps(self.holder)) or (
            _break_if_stale(path) and _try_create(path, json.dumps(self.holder))
        )
        if taken:
            with self.guard:
                self.held.add(name)
        return taken

    def release(self, name: str) -> None:
        with self.guard:
            self.held.discard(name)
        path = self._path(name)
        if (read_holder(path) or {}).get("token") == self.holder["token"]:
            path.unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT):
            with self.guard:
                names = list(self.held)
            for name in names:
                with contextlib.suppress(OSError):
                    os.utime(self._path(name))

    def close(self) -> None:
        self.stop.set()
        with self.guard:
            names = list(self.held)
        for name in names:
            self.release(name)

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
