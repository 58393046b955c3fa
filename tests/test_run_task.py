"""One task contract: any task folder's job.yaml runs alone through `babeltune run-task`, with the result its
grid run gave; a job.yaml that does not match its folder's key is refused."""

from __future__ import annotations

import json

from babeltune.io import read_json
from conftest import babeltune, tiny_config


def test_every_task_folder_reruns_alone_to_the_same_outputs(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate="{enabled: false}")
    assert babeltune("run", str(cfg)).returncode == 0
    folders = sorted(p.parent for p in (tmp_path / "run").glob("*/*/job.yaml"))
    stages = {read_json(f / ".done.json")["stage"] for f in folders}
    assert stages == {"data", "mix", "train", "generate", "evaluate", "report"}
    for folder in folders:
        if folder.parent.name == "report":
            continue  # the report's page records when it was made
        before = read_json(folder / ".done.json")["outputs"]
        again = babeltune("run-task", str(folder), "--force")
        assert again.returncode == 0, again.stderr
        assert "done" in again.stdout
        assert read_json(folder / ".done.json")["outputs"] == before, folder


def test_a_done_task_is_left_alone_and_an_edited_job_is_refused(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run")
    assert babeltune("train", str(cfg)).returncode == 0
    (folder,) = [p for p in (tmp_path / "run" / "train").iterdir() if "en-only" in p.name]
    done = babeltune("run-task", str(folder))
    assert done.returncode == 0 and "1 of 1 tasks already done" in done.stdout
    job = folder / "job.yaml"
    job.write_text(job.read_text().replace("learning_rate: 0.01", "learning_rate: 0.02"))
    edited = babeltune("run-task", str(folder))
    assert edited.returncode == 2 and "not " + folder.name.rsplit("-", 1)[1] in edited.stderr
    assert len(edited.stderr.strip().splitlines()) == 1
    assert babeltune("run-task", str(tmp_path)).stderr.strip().endswith("not a task folder (no job.yaml)")


def test_status_names_every_task_of_the_run_directory(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run")
    assert babeltune("mix", str(cfg)).returncode == 0
    out = babeltune("status", str(tmp_path / "run"), "--json")
    assert out.returncode == 3  # not everything is done
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    states = {(r["stage"], r["state"]) for r in rows}
    assert ("mix", "done") in states and ("train", "to do") in states and ("generate", "waits") in states
    table = babeltune("status", str(tmp_path / "run"))
    assert (
        table.returncode == 3 and "0 of 2 grid points evaluated" in table.stdout and "to do" in table.stdout
    )
    assert babeltune("status", str(tmp_path)).stderr.startswith("babeltune: error: ")
