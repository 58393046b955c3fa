"""What the CLI tests share: the one-line error of a refused command, a real tmpfs, the last message of a
chat request a fake server received, a run directory's training metrics."""

import contextlib
import subprocess

import pytest

from babeltune.io import read_json


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error, which ends stderr: one line, or one line with the listing of the bad records under it."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if "babeltune: error: " in line]
    assert len(errors) == 1 and errors[0].startswith("babeltune: error: "), proc.stderr[-2000:]
    error = proc.stderr[proc.stderr.index(errors[0]) :].rstrip()
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return error  # progress bars may come before it, on lines of their own


@contextlib.contextmanager
def tmpfs(room, size: str):
    """A real tmpfs of ``size`` at ``room`` for the block (the test is skipped where mounting is not allowed)."""
    room.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(room)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield room
    finally:
        subprocess.run(["umount", str(room)], check=True)


def last_message(body: dict) -> str:
    """The content of the last message of a chat completions request body."""
    return body["messages"][-1]["content"]


def training_metrics(run_dir) -> list[dict]:
    """Each training task's metrics.json in a run directory, in task order."""
    return [read_json(p) for p in sorted((run_dir / "train").glob("*/metrics.json"))]
