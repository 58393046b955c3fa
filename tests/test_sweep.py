"""Sweeps and seeds: any setting as an axis of the grid, through `babeltune run`."""

import csv

from babeltune import config
from conftest import babeltune, tiny_config


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


def test_a_sweep_value_that_makes_no_valid_experiment_is_named(tmp_path, tiny_model):
    import pytest

    from babeltune.registry import BabeltuneError

    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run")
    with pytest.raises(BabeltuneError, match=r"sweep \(train.epochs=-1\): train.epochs: must be more than 0"):
        config.load(cfg, ["--sweep={train.epochs: [1, -1]}"])
    with pytest.raises(
        BabeltuneError,
        match="sweep.lora.rank: unknown setting 'rank' choices: alpha, dropout, r, target_modules",
    ):
        config.load(cfg, ["--sweep={lora.rank: [8, 16]}"])
    variants = config.variants(config.load(cfg, ["--sweep={lora.r: [4, 8]}", "--seeds=[3]"]))
    assert [(v.label, v.cfg.lora.r, v.cfg.train.seed) for v in variants] == [
        ("r=4,seed=3", 4, 3),
        ("r=8,seed=3", 8, 3),
    ]
