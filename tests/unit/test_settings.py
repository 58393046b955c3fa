"""Typed YAML: alias bombs, deep nesting, duplicate keys and huge numbers fail fast and briefly; any text
loads or fails naming the file."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from babeltune import config
from babeltune.registry import BabeltuneError
from helpers.strategies import SETTINGS


@SETTINGS
@given(st.text(max_size=200))
def test_any_yaml_text_loads_or_fails_naming_the_file(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        config.load(path)
    except BabeltuneError as err:
        assert str(err).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)
            ),
            "more than 100,000 values",
        ),
        ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested more than 100 levels deep"),
        ("name: a\nname: b\n", "exp.yaml:2: invalid YAML: duplicate key 'name'"),
        ("train: {epochs: " + "9" * 5000 + "}\n", "exp.yaml:1: invalid YAML: a number of 5000 digits"),
    ],
    ids=["alias bomb", "20,000 nested lists", "duplicate key", "a huge number"],
)
def test_yaml_bombs_fail_fast_and_briefly(tmp_path, text, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(BabeltuneError) as err:
        config.load(path)
    assert time.perf_counter() - start < 1 and message in str(err.value) and len(str(err.value)) < 300
