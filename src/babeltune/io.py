"""File helpers shared by every stage: atomic writes that honour the umask, and JSONL with line-numbered
errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from babeltune.registry import BabeltuneError


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask can only set it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder in ``parent`` with the permissions a plain mkdir would give it (mkdtemp gives 0700)."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    tmp.chmod(0o777 & ~current_umask())
    return tmp


def honour_umask(folder: Path) -> None:
    """Give what a library wrote into ``folder`` the permissions a plain open would have (safetensors
    writes weights 0600, unreadable to colleagues on a shared cluster)."""
    mask = current_umask()
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def replaceable(path: Path) -> None:
    """Refuse, in one line, a path that names anything but a regular file (or nothing yet).

    >>> replaceable(Path("/dev/null"))
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: /dev/null: not a regular file (a device, a pipe, a socket or a symlink); babeltune writes only plain files
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet (making its folder will say why not)
        return
    except OSError as err:
        raise BabeltuneError(f"{path}: cannot write there: {err.strerror}") from None
    if stat.S_ISDIR(mode):
        raise BabeltuneError(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise BabeltuneError(f"{path}: not a regular file (a device, a pipe, a socket or a symlink); babeltune "
                             "writes only plain files")  # fmt: skip


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file. The file gets the
    permissions a plain open would give it (mkstemp's are 0600: unreadable to colleagues on a cluster).
    What the path names must be a regular file or nothing: the rename would replace a device node, a pipe
    or a symlink itself (``plan --slurm /dev/full`` as root replaced the device)."""
    replaceable(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


FULL = ("no space left on device", "os error 28", "disk quota exceeded", "file write failed")


def out_of_room(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a full disk: libraries say so in their own words (safetensors:
    "I/O error: No space left on device (os error 28)", torch.save: "file write failed")."""
    while err is not None:
        if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
            w in str(err).lower() for w in FULL
        ):
            return True
        err = err.__cause__ or err.__context__
    return False


def regular_file(path: Path, what: str, max_bytes: int | None = None, raise_with: str = "") -> Path:
    """``path`` when it is a regular file (not a folder, a pipe or a device) of at most ``max_bytes``;
    otherwise an error that says which, at once: a FIFO would block a read forever, /dev/zero fill memory.

    >>> regular_file(Path("/dev/zero"), "data file")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: /dev/zero: the data file is not a regular file (a device, a pipe or a socket)
    """
    try:
        info = os.stat(path)
    except OSError as err:  # no such file, a symlink loop, no permission: the system says which
        raise BabeltuneError(f"{path}: cannot read the {what}: {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise BabeltuneError(f"{path}: the {what} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise BabeltuneError(f"{path}: the {what} is not a regular file (a device, a pipe or a socket)")
    if max_bytes is not None and info.st_size > max_bytes:
        hint = f" ({raise_with} raises it)" if raise_with else ""
        raise BabeltuneError(
            f"{path}: the {what} is {info.st_size:,} bytes, over the limit of {max_bytes:,}{hint}"
        )
    return path


def bounded_lines(path: Path, max_bytes: int, raise_with: str) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line; a line over ``max_bytes`` is an error naming the limit (a
    200 MB line would otherwise be parsed, and tokenized, whole)."""
    with open(path, "rb") as fh:
        for n in range(1, 1 << 62):
            raw = fh.readline(max_bytes + 1)
            if not raw:
                return
            if len(raw.rstrip(b"\r\n")) > max_bytes:
                raise BabeltuneError(
                    f"{path}:{n}: line over {max_bytes:,} bytes ({raise_with} raises the limit)"
                )
            yield n, raw


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(name: str | Path) -> str:
    """What identifies a file or folder's contents cheaply: its path, sizes and modification times (a file
    rewritten in place gets a new one); anything that is not on disk, such as a hub id, stands for itself."""
    path = Path(name)
    if not path.exists():
        return str(name)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    stats = "|".join(
        f"{f.relative_to(path) if f != path else f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
        for f in files
    )
    return f"{path.resolve()}|{stats}"


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BabeltuneError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise BabeltuneError(f"{path}: not valid UTF-8 (byte {err.start})") from None


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object); a bad line raises an error naming ``file:line``."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise BabeltuneError(f"{path}:{lineno}: invalid JSON: {err.msg}") from None
            if not isinstance(obj, dict):
                raise BabeltuneError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_jsonl(path: Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def read_complete_jsonl(path: Path) -> list[dict]:
    """Read an append-only log that a killed process may have left with a torn last line."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn write: the item will be redone
            rows.append(json.loads(line))
    return rows


class AppendLog:
    """Append-only JSONL that is flushed per row, for resumable stages."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        done = read_complete_jsonl(path)
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done))
        self.rows = done
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.rows.append(row)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
