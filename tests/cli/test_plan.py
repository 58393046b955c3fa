"""`babeltune plan` in real processes: the paper's grid, sweeps and bad values named when the config loads."""

import csv
import json
import subprocess
import sys
from collections import Counter

import pytest

from babeltune import config
from babeltune.experiment import build_plan
from conftest import REPO, babeltune, tiny_config
from helpers.cli import one_line_error


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--generate.batch_size=0", "generate.batch_size: must be at least 1, got 0"),
        ("--generate.max_new_tokens=0", "generate.max_new_tokens: must be at least 1, got 0"),
        ("--generate.num_beams=0", "generate.num_beams: must be at least 1, got 0"),
        ("--train.batch_size=0", "train.batch_size: must be at least 1, got 0"),
        ("--lora.r=0", "lora.r: must be at least 1, got 0"),
        ("--test.max_prompts=-1", "test.max_prompts: must be at least 1, got -1"),
        (
            "--train.max_steps=100000000000000000000000000000",
            "train.max_steps: must be at most 1,000,000,000",
        ),
        ("--evaluate.judge.concurrency=0", "evaluate.judge.concurrency: must be at least 1, got 0"),
        ("--models.3.name=x", "--models.3.name: models: no item '3' (it has 1; 1 adds one)"),
        ("--train.epochs.x=1", "--train.epochs.x: train.epochs is a value, not a group of settings"),
        ("--train.epochs=[1", "--train.epochs: invalid YAML value '[1'"),
        ("--name=../../etc", "name: '../../etc' is not a plain folder name"),
    ],
)
def test_bad_values_fail_when_the_config_loads_naming_the_field(override, message):
    line = one_line_error(babeltune("plan", "configs/quick.yaml", override))
    assert message in line


def test_plan_shows_a_fixed_share_through_the_command(tmp_path):
    """What a user sees of mix.share before anything trains: the downsampled mixture's languages at C = 8."""
    from conftest import babeltune

    proc = babeltune("plan", "configs/quick.yaml", f"--output_dir={tmp_path}", "--mix.regimes=[multilingual-downsampled]",
                     "--mix.share={en: 0.5}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("│ multi-down"))
    assert "en 4, es 2, ru 2" in row


def test_plan_needs_no_data_at_all(tmp_path):
    """The paper's grid with its hub data out of reach and no size hint: every task is listed."""
    proc = subprocess.run(
        [sys.executable, "-m", "babeltune", "plan", "configs/paper.yaml", "--data.size_hint=null", "--json",
         f"--output_dir={tmp_path}"], capture_output=True, text=True, cwd=REPO, env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert Counter(r["stage"] for r in rows) == {"data": 2, "mix": 1, "train": 336, "generate": 336,
                                                 "evaluate": 336, "report": 1}  # fmt: skip
    assert all(r["todo"] for r in rows) and not list(tmp_path.iterdir())  # planning wrote nothing
    text = subprocess.run([sys.executable, "-m", "babeltune", "plan", "configs/paper.yaml", "--data.size_hint=null",
                           f"--output_dir={tmp_path}"], capture_output=True, text=True, cwd=REPO).stdout  # fmt: skip
    assert "sizes from nothing: the data is not at hand" in text and "mono-bg" in text


def test_two_grid_points_with_one_name_are_refused_until_labelled(tmp_path):
    """Two entries of one model (another dtype, say) made runs of the same name: one silently took the other's
    place in the report. Now the command refuses, and models.N.label tells them apart."""
    from conftest import babeltune

    twice = '--models=[{name: "builtin:smollm2-135m"}, {name: "builtin:smollm2-135m", dtype: bfloat16}]'
    refused = babeltune("plan", "configs/quick.yaml", f"--output_dir={tmp_path}", twice)
    assert refused.returncode == 2 and "set models.N.label to tell them apart" in refused.stderr
    labelled = twice.replace("dtype: bfloat16}", "dtype: bfloat16, label: smol-bf16}")
    plan = build_plan(config.load(REPO / "configs/quick.yaml", [labelled, f"--output_dir={tmp_path}"]))
    assert len({p.name for p in plan.points}) == len(plan.points) == 6
    assert {p.name.split("/")[0] for p in plan.points} == {"smollm2-135m", "smol-bf16"}


def test_a_typo_in_a_local_model_path_fails_when_the_config_loads(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", models="[{name: /no/such/model}]")
    proc = babeltune("plan", str(cfg))
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"babeltune: error: {cfg}: models[0].name: no such model folder '/no/such/model' (a hub id looks like org/name)"
    )


def test_a_sweep_builds_shared_tasks_once_and_a_new_seed_redoes_nothing_done(tmp_path, tiny_model):
    cfg = str(tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run"))
    sweep = "--sweep={train.learning_rate: [0.01, 0.02]}"
    plan = babeltune("plan", cfg, sweep, "--seeds=[0, 1]")
    assert "sweep: train.learning_rate [0.01, 0.02] x train.seed [0, 1]: 8 grid points" in " ".join(
        plan.stdout.split()
    )
    first = babeltune("run", cfg, sweep, "--seeds=[0, 1]")
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "run"
    assert [len(list((run / stage).iterdir())) for stage in ("data", "tests", "mix")] == [
        1,
        1,
        1,
    ]  # built once
    trained = {p.name for p in (run / "train").iterdir()}
    assert len(trained) == 2 * 2 * 2  # learning rates x seeds x regimes
    (report,) = (run / "report").iterdir()
    rows = list(csv.DictReader((report / "summary.csv").open()))
    names = {r["run"] for r in rows}
    model = tiny_model.rsplit("/", 1)[1]
    assert names == {f"{model}/lora/learning_rate={lr},seed={seed}/{mixture}" for lr in (0.01, 0.02)
                     for seed in (0, 1) for mixture in ("en-only", "multi-down")}  # fmt: skip
    assert {(r["train.learning_rate"], r["train.seed"]) for r in rows} == {(lr, s) for lr in ("0.01", "0.02")
                                                                        for s in ("0", "1")}  # fmt: skip
    finding = (report / "finding.json").read_text()
    assert '"seeds": 2' in finding  # downsampled vs English-only, judged across the two seeds of each rate
    again = babeltune("run", cfg, sweep, "--seeds=[0, 1, 2]")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "27 of 40 tasks already done; running 13" in again.stdout  # 4 new runs x 3 stages + the report
    assert (
        trained < {p.name for p in (run / "train").iterdir()} and len(list((run / "train").iterdir())) == 12
    )
