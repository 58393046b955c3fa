"""Locks in process: holders on other hosts and earlier runs of a requeued Slurm job."""

from __future__ import annotations

import json
import os
import socket
import time

from babeltune.locks import locked, state


def test_a_holder_on_another_host_is_alive_until_its_heartbeat_stops(tmp_path):
    path = tmp_path / "l.lock"
    path.write_text(json.dumps({"host": "node-elsewhere", "pid": 1, "token": "x"}))
    assert state(path)["alive"] is True
    os.utime(path, (time.time() - 3600, time.time() - 3600))  # no heartbeat for an hour
    assert state(path)["alive"] is False
    with locked(path):
        assert json.loads(path.read_text())["host"] == socket.gethostname()


def test_an_earlier_run_of_a_requeued_slurm_job_holds_nothing(tmp_path, monkeypatch):
    path = tmp_path / "l.lock"
    earlier = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": "x",
        "slurm_job": "7_2",
        "restart": 0,
    }
    path.write_text(json.dumps(earlier | {"host": "node-elsewhere"}))
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert state(path)["alive"] is True  # the same job, not requeued: another step of it, say
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert state(path)["alive"] is False
