"""A run-level cache keyed by content: translations and judgements, each stored once per run directory.

Keys hash what determines the value (the model, its prompt and decoding, the text), never which task asked,
so a new task reuses what an old one paid for. SQLite in WAL mode: processes of a Slurm array write to one
file side by side, and every batch is committed at once, so a killed run loses nothing it finished.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def cache_key(*parts: Any) -> str:
    """A hash of the parts (strings, numbers, lists) that determine a cached value.

    >>> cache_key("judge", "gpt", "2+2?", "4") == cache_key("judge", "gpt", "2+2?", "4") != cache_key("x")
    True
    """
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


class ContentCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=120, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a commit costs no fsync
        self.db.execute(SCHEMA)
        self.lock = threading.Lock()  # one connection, shared by a stage's worker threads

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The cached values among ``keys``."""
        found: dict[str, Any] = {}
        unique = list(dict.fromkeys(keys))
        with self.lock:
            for i in range(0, len(unique), 500):  # SQLite caps the number of bound parameters
                chunk = unique[i : i + 500]
                rows = self.db.execute(
                    f"SELECT key, value FROM entries WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update({k: json.loads(v) for k, v in rows})
        return found

    def put_many(self, values: dict[str, Any]) -> None:
        rows = [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()]
        with self.lock, self.db:  # one transaction
            self.db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?)", rows)

    def __len__(self) -> int:
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ContentCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
