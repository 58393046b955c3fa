"""A run-level cache keyed by content: translations and judgements, each paid for once per run directory.

Keys hash what determines the value (the model, its prompt and decoding, the text), never which task asked,
so a new task reuses what an old one paid for.

Safe on any filesystem, NFS included, with no lock: the cache is a folder of append-only shards, and each
process writes only its own (``HOST.PID.TOKEN.open.jsonl``, renamed without ``.open`` when closed). A record
is one line, ``CRC32<TAB>JSON``: a torn or damaged line fails its checksum and is skipped (that item is paid
again, never read wrong). Readers merge every shard, and read again what grew when a key is missing, so a
value another process paid for a moment ago is found. ``compact`` folds the closed shards (and those of dead
processes on this host) into one file, written before the shards it replaces are removed, so a reader never
misses an entry. No SQLite WAL, whose shared-memory index is per host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import uuid
import zlib
from pathlib import Path
from typing import Any

from babeltune.io import atomic_write_text
from babeltune.locks import process_start
from babeltune.registry import BabeltuneError

OPEN = ".open.jsonl"
COMPACT_EVERY = 64  # closed shards that make a closing writer fold them into one


def cache_key(*parts: Any) -> str:
    """A hash of the parts (strings, numbers, lists) that determine a cached value.

    >>> cache_key("judge", "gpt", "2+2?", "4") == cache_key("judge", "gpt", "2+2?", "4") != cache_key("x")
    True
    """
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def run_cache(run_dir: Path, name: str) -> Path:
    """A run directory's cache of ``name`` (translations, judgements): shared by all its tasks and processes."""
    return Path(run_dir) / "cache" / name


def encode(key: str, value: Any) -> str:
    """One record: its checksum, a tab, then the JSON of [key, value].

    >>> decode(encode("k", {"score": 3}))
    ('k', {'score': 3})
    >>> decode(encode("k", 1).replace("1]", "2]")) is None  # damaged
    True
    """
    body = json.dumps([key, value], ensure_ascii=False)
    return f"{zlib.crc32(body.encode()):08x}\t{body}\n"


def decode(line: str) -> tuple[str, Any] | None:
    crc, _, body = line.rstrip("\n").partition("\t")
    try:
        if int(crc, 16) != zlib.crc32(body.encode()):
            return None
        key, value = json.loads(body)
    except ValueError:
        return None
    return key, value


class ContentCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if self.folder.is_file():
            raise BabeltuneError(f"{folder}: a cache is now a folder of shards (safe on shared filesystems), "
                                 "not a file: point at a folder")  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, Any] = {}
        self.offsets: dict[str, int] = {}  # bytes of each shard read so far (up to its last whole line)
        self.damaged = 0
        self.lock = threading.Lock()  # shared by a stage's worker threads
        self._shard: Path | None = None
        self._fd: int | None = None
        self.refresh()

    # --- reading ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read what every shard gained since the last look (new shards whole)."""
        names = set()
        for path in sorted(self.folder.glob("*.jsonl")):
            names.add(path.name)
            self._read_shard(path)
        for gone in set(self.offsets) - names:  # folded by a compaction: its entries are in the new file
            del self.offsets[gone]

    def _read_shard(self, path: Path) -> None:
        start = self.offsets.get(path.name, 0)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a last line without its newline is still being written
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            record = decode(line)
            if record is None:
                self.damaged += 1
            else:
                self.entries[record[0]] = record[1]
        self.offsets[path.name] = start + end

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The cached values among ``keys`` (looking again at the shards when one is missing)."""
        with self.lock:
            if any(k not in self.entries for k in keys):
                self.refresh()
            return {k: self.entries[k] for k in dict.fromkeys(keys) if k in self.entries}

    def __len__(self) -> int:
        with self.lock:
            self.refresh()
            return len(self.entries)

    # --- writing ------------------------------------------------------------------------------------------

    def put_many(self, values: dict[str, Any]) -> None:
        """Append the values to this process's shard, at once and synced: a kill loses nothing returned."""
        if not values:
            return
        data = "".join(encode(k, v) for k, v in values.items()).encode()
        with self.lock:
            if self._fd is None:
                name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}{OPEN}"
                self._shard = self.folder / name
                self._fd = os.open(self._shard, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o666)
            os.write(self._fd, data)
            os.fsync(self._fd)
            self.entries.update(values)

    def close(self) -> None:
        with self.lock:
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            assert self._shard is not None
            closed = self._shard.with_name(self._shard.name.removesuffix(OPEN) + ".jsonl")
            os.replace(self._shard, closed)
        if len(foldable(self.folder)) >= COMPACT_EVERY:
            compact(self.folder)

    def __enter__(self) -> ContentCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dead_here(name: str) -> bool:
    """Whether an open shard's writer was a process on this host that is gone."""
    host, pid, *_ = name.split(".")
    return host == socket.gethostname() and pid.isdigit() and process_start(int(pid)) is None


def foldable(folder: Path) -> list[Path]:
    """The shards nobody writes any more: closed ones, and open ones of dead processes on this host."""
    return [
        p for p in sorted(Path(folder).glob("*.jsonl")) if not p.name.endswith(OPEN) or _dead_here(p.name)
    ]


def compact(folder: Path) -> tuple[int, int]:
    """Fold the shards nobody writes into one; returns (shards folded, entries kept). Safe while other
    processes read and write: the new file lands before the old ones go, and open shards are left alone."""
    shards = foldable(folder)
    if len(shards) < 2:
        return 0, 0
    merged = ContentCache.__new__(ContentCache)
    merged.entries, merged.offsets, merged.damaged = {}, {}, 0
    for path in shards:
        merged._read_shard(path)
    name = f"compact.{uuid.uuid4().hex[:12]}.jsonl"
    atomic_write_text(Path(folder) / name, "".join(encode(k, v) for k, v in merged.entries.items()))
    for path in shards:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(shards), len(merged.entries)
