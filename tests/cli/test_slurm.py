"""The grid on a real Slurm cluster (Debian's slurm-wlm and munge, one node, started here as root): the
script as `babeltune plan --slurm` writes it, submitted with bash; preemption; a failed grid point."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from babeltune.models import model_slug
from conftest import babeltune, tiny_config
from slurm_cluster import Cluster, missing_binaries

pytestmark = pytest.mark.slurm


SITE = '{gpus: 0, cpus: 1, memory: 1G, time: "0:30:00", prep_time: "0:30:00", report_time: "0:30:00"}'


THREE = "{regimes: [english-only, multilingual-downsampled, monolingual], monolingual_languages: [es]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"no Slurm here ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root")
    cluster = Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def submit(cluster: Cluster, cfg: Path, script: Path, *plan_args: str) -> str:
    planned = babeltune(
        "plan", str(cfg), "--slurm", str(script), *plan_args, env={"SLURM_CONF": str(cluster.conf)}
    )
    assert planned.returncode == 0, planned.stderr
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=cluster.env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def wait(cluster: Cluster, timeout: float = 400) -> None:
    assert cluster.wait_idle(timeout), f"jobs still queued: {cluster.squeue()}\n{cluster.log_tail()}"


def logs(run: Path) -> str:
    return "\n".join(
        f"== {p.name}\n{p.read_text(errors='replace')}" for p in sorted((run / "slurm").iterdir())
    )


def answers(run: Path) -> dict[str, list[str]]:
    """Each grid point's answers, by the generate task's folder slug."""
    return {p.name.rsplit("-", 1)[0]: [json.loads(line)["response"] for line in (p / "responses.jsonl").open()]
            for p in (run / "generate").iterdir()}  # fmt: skip


def status(cluster: Cluster, run: Path) -> list[dict]:
    out = babeltune("status", str(run), "--json", env={"SLURM_CONF": str(cluster.conf)})
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_the_grid_runs_under_slurm_as_submitted_and_equals_a_local_run(cluster, tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", mix=THREE, slurm=SITE)
    start = time.monotonic()
    said = submit(cluster, cfg, tmp_path / "grid.sh")
    assert "submitted: prep" in said
    wait(cluster)
    slurm_seconds = time.monotonic() - start
    run = tmp_path / "run"
    names = sorted(p.name for p in (run / "slurm").iterdir())
    assert [n.split("-")[0] for n in names] == ["point", "point", "point", "prep", "report"], names
    assert all(row["state"] == "done" for row in status(cluster, run)), logs(run)
    (report,) = (run / "report").iterdir()
    assert json.loads((report / "grid.json").read_text())["missing"] == []

    local_cfg = tiny_config(tmp_path / "local.yaml", tiny_model, tmp_path / "local", mix=THREE, slurm=SITE)
    start = time.monotonic()
    assert babeltune("run", str(local_cfg)).returncode == 0
    local_seconds = time.monotonic() - start
    assert answers(run) == answers(tmp_path / "local") and len(answers(run)) == 3
    (local_report,) = (tmp_path / "local" / "report").iterdir()
    assert (report / "summary.csv").read_text() == (local_report / "summary.csv").read_text()
    print(f"3-point grid: {slurm_seconds:.0f} s under Slurm (submit to idle), {local_seconds:.0f} s locally")


def test_a_preempted_element_checkpoints_requeues_and_resumes_to_the_same_result(
    cluster, tmp_path, tiny_model
):
    train = "{epochs: 1, max_steps: 400, batch_size: 4, grad_accum: 1, learning_rate: 1.0e-3, threads: 1}"
    groups = {"mix": "{regimes: [multilingual]}", "train": train, "slurm": SITE}
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", **groups)
    said = submit(cluster, cfg, tmp_path / "grid.sh")
    array = said.split("arrays ")[1].split(",")[0]
    log = tmp_path / "run" / "train"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(
        len(p.read_text().splitlines()) >= 20 for p in log.glob("*/train_log.jsonl")
    ):
        time.sleep(0.2)
    signalled = subprocess.run(["scancel", "--signal=USR1", "--batch", f"{array}_0"], env=cluster.env,
                               capture_output=True, text=True)  # fmt: skip
    assert signalled.returncode == 0, signalled.stderr
    wait(cluster, 500)
    run = tmp_path / "run"
    text = logs(run)
    stopped = int(text.split("stopped at step ")[1].split()[0])
    assert 20 <= stopped < 400, text
    assert f"requeued job {array}_0 (requeue 1 of at most 3)" in text, text
    assert f"resuming from checkpoint-{stopped} (step {stopped} of 400)" in text, text
    assert all(row["state"] == "done" for row in status(cluster, run)), text
    (metrics,) = run.glob("train/*/metrics.json")
    assert json.loads(metrics.read_text())["steps"] == 400

    local = tiny_config(tmp_path / "local.yaml", tiny_model, tmp_path / "local", **groups)
    assert babeltune("run", str(local)).returncode == 0
    assert answers(run) == answers(tmp_path / "local")


def test_a_failed_point_is_reported_missing_named_by_status_and_rerun_alone(cluster, tmp_path, tiny_model):
    model = model_slug(tiny_model)
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", mix=THREE, slurm=SITE)
    run = tmp_path / "run"
    assert babeltune("mix", str(cfg)).returncode == 0  # the preparation, done before the cluster sees it
    (mixture,) = run.glob("mix/*/mono-es/mixture.jsonl")
    good = mixture.read_text()
    mixture.write_text(good.replace("{", "[", 1))  # the mono-es point's data is broken on line 1
    said = submit(cluster, cfg, tmp_path / "grid.sh")
    wait(cluster)
    text = logs(run)
    assert f"missing from the report: {model}/lora/mono-es: train failed" in text, text
    (report,) = (run / "report").iterdir()
    assert json.loads((report / "grid.json").read_text())["missing"] == [f"{model}/lora/mono-es"]
    assert "Incomplete grid: 1 of 3 grid points" in (report / "report.html").read_text()
    rows = {(r["point"], r["stage"]): r for r in status(cluster, run)}
    failed = rows[f"{model}/lora/mono-es", "train"]
    assert (
        failed["state"] == "failed"
        and "mixture.jsonl:1" in failed["detail"]
        and "Slurm job" in failed["detail"]
    )
    assert rows[f"{model}/lora/en-only", "evaluate"]["state"] == "done"

    mixture.write_text(good)  # fixed: only that point is resubmitted, and no prep job
    said = submit(cluster, cfg, tmp_path / "todo.sh", "--only-todo")
    assert said.startswith("submitted: prep (none") and "--array=2 " in (tmp_path / "todo.sh").read_text()
    wait(cluster)
    assert all(row["state"] == "done" for row in status(cluster, run)), logs(run)
    complete = [
        p for p in (run / "report").iterdir() if json.loads((p / "grid.json").read_text())["missing"] == []
    ]
    assert len(complete) == 1
