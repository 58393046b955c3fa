"""Property-based tests: whatever a user feeds in, the answer is a result or one clear BabeltuneError."""

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from babeltune import config
from babeltune.data import loaders
from babeltune.registry import BabeltuneError

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["name", "data", "mix", "train", "models", "test", "evaluate", "generate", "translate", "typo"]
)
sub_names = st.sampled_from(
    ["languages", "regimes", "budget", "epochs", "batch_size", "source", "judge", "name", "seed", "x"]
)
configs = st.dictionaries(field_names, values | st.dictionaries(sub_names, values, max_size=4), max_size=5)


@SETTINGS
@given(configs)
@example({"mix": {"budget": float("inf")}})
@example({"train": {"epochs": float("-inf"), "batch_size": 1e300}})
def test_any_config_data_loads_or_fails_with_a_named_field(data):
    try:
        config.from_dict(config.ExperimentConfig, data).check()
    except BabeltuneError as err:
        assert str(err) and "\n" not in str(err)


@SETTINGS
@given(st.text(max_size=200))
def test_any_yaml_text_loads_or_fails_naming_the_file(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        config.load(path)
    except BabeltuneError as err:
        assert str(err).startswith(str(path))


@SETTINGS
@given(st.lists(st.binary(max_size=60) | st.builds(json.dumps, values), max_size=6))
def test_any_jsonl_file_loads_or_fails_with_file_and_line(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    try:
        examples = loaders.examples_from_source(str(path), "en")
    except BabeltuneError as err:
        assert str(err).startswith(f"{path}:")
    else:
        assert all(e.lang == "en" and isinstance(e.instruction, str) for e in examples)


@SETTINGS
@given(st.lists(st.binary(max_size=60) | st.builds(json.dumps, values), max_size=6))
def test_any_test_file_is_read_with_every_bad_line_reported(tmp_path, lines):
    path = tmp_path / "test_es.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    prompts, problems = loaders.read_test_file(path, "es", "line")
    assert all(str(p).startswith(f"{path}:") for p in problems)
    assert all(p.lang == "es" and p.prompt.strip() for p in prompts)


import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

CLI_CASES = [
    ("name: [unclosed\n", "invalid YAML"),
    ("mix: {budget: -5}\n", "mix.budget: must be at least 1, got -5"),
    (
        "evaluate: {judge: {prompt: paper-1to4}}\n",
        "unknown judge prompt 'paper-1to4'; did you mean 'paper-1to3'",
    ),
    ("evaluate: {judge: {backend: opnai}}\n", "unknown judge backend 'opnai'; did you mean 'openai'"),
    ("data: {languages: [en, xx]}\n", "unknown language 'xx'"),
    ("train: {methods: [lora], epochs: many}\n", "train.epochs: expected a number, got 'many'"),
    ("translate: {enabled: true, backend: deepl}\n", "unknown translation backend 'deepl'"),
    (
        "data: {source: /nonexistent/alpaca.json}\n",
        "data.source: no such file or folder '/nonexistent/alpaca.json'",
    ),
]


@pytest.mark.parametrize(("yaml_text", "message"), CLI_CASES)
def test_cli_bad_input_is_one_line_exit_2_no_traceback(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text("# babeltune run bad.yaml\n" + yaml_text)
    proc = subprocess.run([sys.executable, "-m", "babeltune", "translate" if "translate" in yaml_text else "data",
                           str(path), f"--output_dir={tmp_path / 'run'}"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("babeltune: error: ") and message in lines[0], proc.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "babeltune", "--debug", "data", str(path)], capture_output=True, text=True
    )
    assert "Traceback" in debug.stderr or debug.returncode == 0
