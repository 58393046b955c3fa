"""`babeltune train` in real processes: a killed run resumes, a full disk is one line, a run that learns
nothing says so."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from safetensors.torch import load_file

from babeltune.config import LoraArgs, ModelArgs, TrainArgs
from babeltune.io import read_json
from babeltune.train.stage import TrainJob, run
from conftest import babeltune, tiny_config
from helpers.cli import one_line_error, tmpfs, training_metrics


def test_a_full_disk_during_training_is_one_clear_line(tmp_path):
    """A real 30 MB tmpfs as the run directory: the checkpoint's safetensors write fails for want of room."""
    from babeltune import tiny

    with tmpfs(tmp_path / "room", "30M") as room:
        model = tiny.llama(tmp_path / "model", hidden=512, layers=4, heads=8)  # 42 MB of weights
        cfg = tiny_config(tmp_path / "exp.yaml", model, room / "run", data="{languages: [en], max_examples_per_language: 8}",
                          mix="{regimes: [english-only]}", test="{languages: [en]}",
                          train="{methods: [full], max_steps: 2, eval_every: 1, batch_size: 4, grad_accum: 1}")  # fmt: skip
        line = one_line_error(babeltune("train", str(cfg)))
        assert "no space left on the device; finished tasks are kept, rerun when there is room" in line
        assert len(list((room / "run" / "data").iterdir())) == 1  # the data task is kept


def test_a_hub_id_without_a_hub_fails_fast_in_one_line(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", models="[{name: nobody/no-model}]")
    start = time.perf_counter()
    proc = babeltune("train", str(cfg), env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert time.perf_counter() - start < 30 and proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert (
        "model 'nobody/no-model' is not a local folder, not in the hub cache, and 127.0.0.1 cannot be reached"
        in line
    )


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


def test_a_killed_run_resumes_from_its_last_checkpoint_with_the_same_data_order(tmp_path, mixture):
    import time

    import torch

    from babeltune import tiny
    from babeltune.train.launch import write_job_file

    folder = tiny.llama(tmp_path / "model", hidden=512, layers=4, heads=8)  # slow enough to kill mid-run
    args = TrainArgs(
        max_steps=12, eval_every=3, batch_size=2, grad_accum=1, learning_rate=1e-3, max_length=96
    )
    job = TrainJob(ModelArgs(name=folder), "lora", LoraArgs(r=8, alpha=16, dropout=0.0), args)
    run(job, mixture, tmp_path / "reference")

    out = tmp_path / "killed"
    out.mkdir()
    write_job_file(job, mixture, out / "job.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "babeltune.train", str(out / "job.yaml"), str(out)])
    deadline = time.time() + 300
    while (
        not (out / "checkpoints" / "checkpoint-6" / "trainer_state.json").exists() and time.time() < deadline
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "metrics.json").exists()

    run(job, mixture, out)
    metrics = read_json(out / "metrics.json")
    assert metrics["resumed_from"].endswith(("checkpoint-6", "checkpoint-9")) and metrics["steps"] == 12
    resumed = load_file(out / "adapter" / "adapter_model.safetensors")
    reference = load_file(tmp_path / "reference" / "adapter" / "adapter_model.safetensors")
    assert resumed.keys() == reference.keys()
    assert all(torch.allclose(resumed[k], reference[k], atol=1e-6) for k in reference)


def test_a_one_step_run_learns_and_a_run_that_learns_nothing_says_so(tmp_path, tiny_model):
    one_step = "{epochs: 1, batch_size: 8, grad_accum: 1, learning_rate: 5.0e-2, warmup_ratio: 0.05}"
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run", train=one_step, mix="{regimes: [english-only]}"
    )
    proc = babeltune("train", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (metrics,) = training_metrics(tmp_path / "run")
    assert metrics["steps"] == 1 and metrics["learned"] is True
    assert metrics["probe_loss_after"] < metrics["probe_loss_before"]  # the only step is not spent at lr 0
    assert "{'loss'" not in proc.stdout + proc.stderr  # no raw Trainer dicts...
    assert re.search(r"train tiny-llama\d+-lora-en-only-\w+: 100%\|.*1/1 .*loss=", proc.stderr)  # ...a bar

    frozen = "{epochs: 1, batch_size: 8, grad_accum: 1, learning_rate: 1.0e-12}"
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run2", train=frozen, mix="{regimes: [english-only]}"
    )
    proc = babeltune("train", str(cfg))
    assert proc.returncode == 0 and "moved neither its loss" in proc.stderr
    assert training_metrics(tmp_path / "run2")[0]["learned"] is False
