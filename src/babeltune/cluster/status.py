"""Where every task of a run directory stands, from the run directory alone: the resolved config it keeps
(``experiment.yaml``) gives the plan; each task's ``.done.json``, its lock (who holds it: host, pid, Slurm
job) and its last failure (``.failures/``) give its state.

States: done; incomplete (finished with N failed items: a rerun retries them); running (job J on host H);
stopped (its holder is gone: killed, cancelled, out of time or memory); failed (with the last error line);
to do; waits for STAGE (an input is still to be made).
"""

from __future__ import annotations

import json
from pathlib import Path

from babeltune.experiment import Plan
from babeltune.locks import state
from babeltune.registry import BabeltuneError
from babeltune.tasks import Task, describe_holder, failure_path, lock_path

RESOLVED = "experiment.yaml"  # the resolved config a grid command leaves in its run directory


def task_state(task: Task) -> dict:
    """One task's state: ``state`` (a word) and ``detail`` (who, or the error line)."""
    if not task.ready:
        return {"state": "waits", "detail": task.status}
    if task.done:
        return {"state": "done", "detail": ""}
    holder = state(lock_path(task))
    if holder is not None and holder["alive"]:
        return {
            "state": "running",
            "detail": describe_holder(holder).removeprefix("another babeltune process "),
        }
    failure = _read(failure_path(task))
    if failure is not None:
        return {"state": "failed", "detail": failure["error"] + _where(failure)}
    if task.record is not None:
        return {"state": "incomplete", "detail": task.status.removeprefix("incomplete: ")}
    if holder is not None:
        return {
            "state": "stopped",
            "detail": f"{describe_holder(holder)} is gone (killed, cancelled or out of time)",
        }
    return {"state": "to do", "detail": ""}


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _where(failure: dict) -> str:
    job = f"Slurm job {failure['slurm_job']}, " if failure.get("slurm_job") else ""
    return f" ({job}{failure.get('host')})"


def rows(plan: Plan) -> list[dict]:
    """One row per task: grid point (or "shared"), stage, name, state, detail."""
    point_of = {id(t): p.name for p in plan.points for t in (p.train, p.generate, p.evaluate)}
    return [
        {"point": point_of.get(id(t), f"shared: {t.name}"), "stage": t.stage, "name": t.name} | task_state(t)
        for t in plan.tasks
    ]


def load_plan(run_dir: Path) -> Plan:
    from babeltune import config
    from babeltune.experiment import build_plan

    resolved = Path(run_dir) / RESOLVED
    if not resolved.is_file():
        raise BabeltuneError(f"{run_dir}: not a babeltune run directory (no {RESOLVED}; it is written by "
                             "run, plan and every stage command)")  # fmt: skip
    cfg = config.load(resolved)
    cfg.output_dir = str(run_dir)  # where it lies now, whatever the config said when it was written
    return build_plan(cfg)


def print_status(run_dir: Path, as_json: bool = False) -> int:
    """Print every task's state; returns 0 when all are done, 3 when some are not."""
    from rich.console import Console
    from rich.table import Table

    plan = load_plan(run_dir)
    table = rows(plan)
    if as_json:
        for row in table:
            print(json.dumps(row, ensure_ascii=False))
    else:
        console = Console(width=max(Console().width, 160))
        out = Table(title=f"{run_dir}: {len(plan.points)} grid points", title_justify="left")
        for col in ("grid point", "stage", "state", "detail"):
            out.add_column(col, overflow="fold")
        for row in table:
            out.add_row(row["point"], row["stage"], row["state"], row["detail"])
        console.print(out)
        counts: dict[str, int] = {}
        for row in table:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        finished = sum(p.evaluate.done for p in plan.points)
        console.print(f"{finished} of {len(plan.points)} grid points evaluated; tasks: "
                      + ", ".join(f"{n} {s}" for s, n in counts.items()))  # fmt: skip
    return 0 if all(r["state"] == "done" for r in table) else 3
