"""Resuming: the newest checkpoint a kill did not cut short."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint a kill did not cut short; half-written and unreadable ones are removed (and
    an unreadable one is said, since it looked complete)."""
    if not folder.is_dir():
        return None
    found = sorted(
        folder.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    for path in reversed(found):
        if all((path / name).exists() for name in CHECKPOINT_FILES):
            try:
                json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
                return str(path)
            except (ValueError, OSError) as err:
                print(f"{path}: unreadable trainer_state.json ({err}); skipped, resuming from an earlier "
                      "checkpoint or the start", file=sys.stderr)  # fmt: skip
        shutil.rmtree(path, ignore_errors=True)
    return None
