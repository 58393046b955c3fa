"""The command line in process: help that explains every field, stray arguments, overrides, the plan table."""

import pytest

from babeltune.cli import main
from babeltune.experiment import STAGES

COMMANDS = ["run", "plan", "show-config", *STAGES]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_explains_every_config_field(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    for field in (
        "train.epochs",
        "mix.regimes",
        "evaluate.judge.backend",
        "models.N.name",
        "generate.num_beams",
    ):
        assert field in out


def test_stray_argument_is_rejected(capsys):
    assert main(["plan", "configs/quick.yaml", "train.epochs=1"]) == 2
    assert "overrides look like --train.epochs=1" in capsys.readouterr().err


def test_show_config_applies_overrides(capsys):
    assert main(["show-config", "configs/quick.yaml", "--train.epochs=5", "--name=abc"]) == 0
    out = capsys.readouterr().out
    assert "name: abc" in out and "epochs: 5.0" in out


def test_plan_prints_the_budget_table(capsys, tmp_path):
    assert main(["plan", "configs/default.yaml", f"--output_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    for mixture in ("en-only", "multi-down", "mono-es"):
        assert mixture in out
    assert "to do" in out


def test_help_says_which_settings_cannot_change_a_result(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert (
        "redoes nothing" in lines["evaluate.judge.concurrency"] and "redoes nothing" in lines["train.threads"]
    )
    assert "redoes nothing" not in lines["train.learning_rate"] and "redoes nothing" not in lines["lora.r"]
