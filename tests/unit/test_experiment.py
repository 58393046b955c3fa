"""Expanding the grid: a sweep value that makes no valid experiment is named."""

from babeltune import config
from conftest import tiny_config


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
