"""A persistent translation cache in SQLite, keyed by backend, model, language pair and text.

Every finished batch is committed at once, so a run killed half-way loses nothing it finished and
a second run of the same translation makes zero model calls.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL, model TEXT NOT NULL, src TEXT NOT NULL, tgt TEXT NOT NULL,
    source TEXT NOT NULL, target TEXT NOT NULL
)
"""


def cache_key(backend: str, model: str, src: str, tgt: str, text: str) -> str:
    return hashlib.sha256("\x1f".join([backend, model, src, tgt, text]).encode()).hexdigest()


class TranslationCache:
    def __init__(self, path: Path, backend: str, model: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60, check_same_thread=False)  # callers serialise writes
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.backend, self.model = backend, model

    def get_many(self, src: str, tgt: str, texts: list[str]) -> dict[str, str]:
        """The cached translations among ``texts``."""
        keys = {cache_key(self.backend, self.model, src, tgt, t): t for t in set(texts)}
        found: dict[str, str] = {}
        items = list(keys)
        for i in range(0, len(items), 500):  # SQLite caps the number of bound parameters
            chunk = items[i : i + 500]
            rows = self.db.execute(
                f"SELECT key, target FROM translations WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update({keys[k]: target for k, target in rows})
        return found

    def put_many(self, src: str, tgt: str, pairs: dict[str, str]) -> None:
        rows = [
            (cache_key(self.backend, self.model, src, tgt, s), self.backend, self.model, src, tgt, s, t)
            for s, t in pairs.items()
        ]
        with self.db:  # one transaction per batch
            self.db.executemany("INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]

    def close(self) -> None:
        self.db.close()
