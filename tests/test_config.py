from pathlib import Path

import pytest

from babeltune import config
from babeltune.registry import BabeltuneError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


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
        ("--mix.budget=0", "mix.budget: must be positive"),
        ("--mix.monolingual_languages=[hi]", "'hi' is not in data.languages"),
        ("--train.methods=[qlora]", "unknown value 'qlora'"),
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
