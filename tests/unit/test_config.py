"""Loading an experiment: every shipped config, overrides, checks that span groups, and any value fed in
loads or fails naming its field."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from babeltune import config
from babeltune.registry import BabeltuneError
from conftest import REPO
from helpers.strategies import SETTINGS, values

field_names = st.sampled_from(
    ["name", "data", "mix", "train", "models", "test", "evaluate", "generate", "translate", "typo"]
)


sub_names = st.sampled_from(
    ["languages", "regimes", "budget", "epochs", "batch_size", "source", "judge", "name", "seed", "x"]
)


configs = st.dictionaries(field_names, values | st.dictionaries(sub_names, values, max_size=4), max_size=5)


CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


@SETTINGS
@given(configs)
@example({"mix": {"budget": float("inf")}})
@example({"train": {"epochs": float("-inf"), "batch_size": 1e300}})
def test_any_config_data_loads_or_fails_with_a_named_field(data):
    try:
        config.from_dict(config.ExperimentConfig, data).check()
    except BabeltuneError as err:
        assert str(err) and "\n" not in str(err)


def test_there_are_configs():
    assert {"default.yaml", "quick.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_checked_in_config_loads_and_says_how_to_run_it(path):
    cfg = config.load(path)
    assert cfg.name
    first = path.read_text().splitlines()[0]
    assert first.startswith("# babeltune "), f"{path} must start with the command that runs it"


def test_overrides_change_typed_fields():
    cfg = config.load(
        REPO / "configs/quick.yaml", ["--train.epochs=1", "--models.0.template=chat", "--mix.seed=7"]
    )
    assert cfg.train.epochs == 1.0 and isinstance(cfg.train.epochs, float)
    assert cfg.models[0].template == "chat"
    assert cfg.mix.seed == 7


def test_unknown_field_names_the_file_and_suggests(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 2\n")
    with pytest.raises(
        BabeltuneError, match=r"bad\.yaml: train\.epoch: unknown field 'epoch'; did you mean 'epochs'"
    ):
        config.load(bad)


def test_wrong_type_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: eight\n")
    with pytest.raises(BabeltuneError, match=r"train\.batch_size: expected an integer, got 'eight'"):
        config.load(bad)


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: [unclosed\n")
    with pytest.raises(BabeltuneError, match=r"bad\.yaml:\d+: invalid YAML"):
        config.load(bad)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--mix.regimes=[english]", "unknown regime 'english'; did you mean 'english-only'"),
        ("--data.languages=[en, xx]", "data.languages: unknown language 'xx'"),
        ("--mix.budget=0", "mix.budget: must be at least 1, got 0"),
        ("--mix.monolingual_languages=[hi]", "'hi' is not in data.languages"),
        ("--train.methods=[qlora]", "train.methods\\[0\\]: unknown fine-tuning method 'qlora'"),
    ],
)
def test_cross_field_checks(override, message):
    with pytest.raises(BabeltuneError, match=message):
        config.load(REPO / "configs/quick.yaml", [override])


def test_resolved_config_round_trips():
    cfg = config.load(REPO / "configs/default.yaml")
    import yaml

    again = config.from_dict(config.ExperimentConfig, yaml.safe_load(config.dump_yaml(cfg)))
    assert again == cfg


def test_every_field_has_help():
    rows = config.describe()
    assert len(rows) > 40
    assert all(help for _, _, help in rows), [name for name, _, help in rows if not help]


def test_a_field_name_with_a_newline_gives_a_one_line_error():
    """Found by the property-based test: the raw key used to break the message over two lines."""
    from babeltune.config import ExperimentConfig, from_dict
    from babeltune.registry import BabeltuneError

    with pytest.raises(BabeltuneError) as err:
        from_dict(ExperimentConfig, {"data": {"a\nb": 1}})
    assert "\n" not in str(err.value) and str(err.value).startswith("data.'a\\nb': unknown field")


def test_yaml_is_read_as_yaml_1_2_in_files_and_overrides(tmp_path):
    """Norwegian is `no`: only true/false are booleans, and 1e-3 is a number (YAML 1.1 says False and a string)."""
    path = tmp_path / "exp.yaml"
    path.write_text("test: {languages: [en, no]}\ntrain: {learning_rate: 1e-3}\n")
    cfg = config.load(path, ["--data.languages=[en, no]", "--translate.enabled=true", "--report.title=on"])
    assert (
        cfg.test.languages == ["en", "no"] and cfg.data.languages == ["en", "no"] and cfg.report.title == "on"
    )
    assert cfg.train.learning_rate == 0.001 and cfg.translate.enabled is True


def test_yaml_yes_is_not_a_boolean(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("translate: {enabled: yes}\n")
    with pytest.raises(BabeltuneError, match="translate.enabled: expected true or false, got 'yes'"):
        config.load(path)


def test_a_missing_model_folder_fails_at_load_naming_the_field():
    with pytest.raises(BabeltuneError, match=r"models\[0\]\.name: no such model folder './models/tiny'"):
        config.load(REPO / "configs/quick.yaml", ["--models.0.name=./models/tiny"])
    with pytest.raises(BabeltuneError, match=r"evaluate\.judge\.model: no such model folder"):
        config.load(REPO / "configs/quick.yaml", ["--evaluate.judge.model=/nowhere/judge"])


def test_settings_that_cannot_change_a_result_say_so_on_the_field():
    from babeltune.settings import result_fields

    plumbing = {"concurrency", "timeout", "max_retries", "price_per_million_input", "price_per_million_output",
                "base_url", "api_key_env", "threads", "report_to", "batch_size"}  # fmt: skip
    judge = result_fields(config.JudgeArgs())
    assert not plumbing & set(judge) and {"model", "prompt", "backend"} <= set(judge)
    assert "threads" not in result_fields(config.TrainArgs()) and "batch_size" in result_fields(
        config.TrainArgs()
    )


def test_a_methods_own_settings_may_be_nested_under_its_name(tmp_path):
    """Issue 23: ``train: {full: {epochs: 3}}`` is ``train.full_epochs: 3``: the same experiment, the same keys."""
    from babeltune.experiment import build_plan

    nested = config.load(
        REPO / "configs/quick.yaml", ["--train.full.epochs=3", "--train.full.loss_on_prompt=false"]
    )
    flat = config.load(
        REPO / "configs/quick.yaml", ["--train.full_epochs=3", "--train.full_loss_on_prompt=false"]
    )
    assert nested == flat and nested.train.full_epochs == 3
    assert [t.plan_key for t in build_plan(nested).tasks] == [t.plan_key for t in build_plan(flat).tasks]
    with pytest.raises(BabeltuneError, match="train.full.warmup: full runs have no setting of their own"):
        config.load(REPO / "configs/quick.yaml", ["--train.full.warmup=3"])
