"""Locks across real processes: one holder at a time, a killed holder's lock broken by the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from babeltune.locks import locked, state

HOLD = (
    "import sys, time; from pathlib import Path; from babeltune.locks import locked\n"
    "with locked(Path(sys.argv[1])):\n"
    "    Path(sys.argv[2]).open('a').write(f'in {time.time()}\\n'); time.sleep(1.5)\n"
    "    Path(sys.argv[2]).open('a').write(f'out {time.time()}\\n')\n"
)


def test_processes_take_the_lock_one_at_a_time(tmp_path):
    log = tmp_path / "log"
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "l.lock"), str(log)]) for _ in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["in", "out"] * 3  # never two inside at once
    assert not (tmp_path / "l.lock").exists()


def test_a_killed_holder_leaves_a_lock_that_the_next_process_breaks(tmp_path):
    path = tmp_path / "l.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(tmp_path / "log")])
    while not path.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert path.exists() and state(path)["alive"] is False
    start = time.monotonic()
    with locked(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert time.monotonic() - start < 5
