"""Loaders for every supported format, and the exact file:line of every malformed input."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from babeltune.config import DataArgs, TestArgs
from babeltune.data import loaders, stage
from babeltune.data.loaders import examples_from_source
from babeltune.io import read_json, read_jsonl
from babeltune.registry import BabeltuneError
from helpers.strategies import SETTINGS, values

ALPACA = [
    {"instruction": "Name a fruit.", "input": "", "output": "An apple."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
]


@pytest.fixture()
def paper_test_files(tmp_path):
    """Like the paper's files: ids differ across languages, one invalid line, no trailing newline."""
    (tmp_path / "test_en.jsonl").write_text(
        '{"id": "a1", "prompt": "What is love?"}\n{"id": "a2", "prompt": "Why is the sky blue?"}\n{"id": "a3", "prompt": "Name a river."}'
    )
    (tmp_path / "test_es.jsonl").write_text(
        '{"id": "b1", "prompt": "¿Qué es el amor?"}\n{"id": "b2", "prompt": "¿Por qué el cielo es azul?"\n{"id": "b3", "prompt": "Nombra un río."}\n'
    )
    return tmp_path


@SETTINGS
@given(st.lists(st.binary(max_size=60) | st.builds(json.dumps, values), max_size=6))
def test_any_test_file_is_read_with_every_bad_line_reported(tmp_path, lines):
    path = tmp_path / "test_es.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    prompts, problems = loaders.read_test_file(path, "es", "line")
    assert all(str(p).startswith(f"{path}:") for p in problems)
    assert all(p.lang == "es" and p.prompt.strip() for p in prompts)


def test_alpaca_json_array(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(ALPACA))
    examples = examples_from_source(str(path), "en")
    assert [(e.id, e.source_id, e.lang, e.input) for e in examples] == [
        ("alpaca-000001:en", "alpaca-000001", "en", ""),
        ("alpaca-000002:en", "alpaca-000002", "en", "2 and 3"),
    ]


def test_jsonl_with_ids_and_a_column_map(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": "q1", "question": "Why?", "answer": "Because."}\n{"id": "q2", "question": "How?", "answer": "So."}'
    )
    examples = examples_from_source(
        str(path), "de", column_map={"instruction": "question", "output": "answer"}
    )
    assert [(e.id, e.instruction, e.output) for e in examples] == [
        ("q1:de", "Why?", "Because."),
        ("q2:de", "How?", "So."),
    ]


def test_sharegpt_conversations_and_messages(tmp_path):
    path = tmp_path / "chats.json"
    path.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "system", "value": "Be nice."},
                        {"from": "human", "value": "Hi?"},
                        {"from": "gpt", "value": "Hello!"},
                    ]
                },
                {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
            ]
        )
    )
    examples = examples_from_source(str(path), "en")
    assert [(e.instruction, e.output) for e in examples] == [("Hi?", "Hello!"), ("2+2?", "4")]


def test_hf_datasets_save_to_disk(tmp_path):
    import datasets

    ds = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list([{"prompt": "Say hi.", "response": "Hi!"}])}
    )
    ds.save_to_disk(tmp_path / "ds")
    examples = examples_from_source(
        str(tmp_path / "ds"), "fr", column_map={"instruction": "prompt", "output": "response"}
    )
    assert [(e.lang, e.instruction, e.output, e.input) for e in examples] == [("fr", "Say hi.", "Hi!", "")]
    with pytest.raises(BabeltuneError, match="no split 'test'; it has train"):
        examples_from_source(str(tmp_path / "ds"), "fr", split="test")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.jsonl",
            '{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "output"\n',
            r"bad\.jsonl:3: invalid JSON",
        ),
        (
            "bad.json",
            '[{"instruction": "a", "output": "b"}, {"instruction": "c"}]',
            r"bad\.json:1: missing or non-string field\(s\): output \(map other",  # the line it is on
        ),
        ("bad.json", '{"instruction": "a"}', r"bad\.json: expected a JSON array"),
        ("bad.json", '[{"instruction": "a", "output": "b"},\n oops]', r"bad\.json:2: invalid JSON"),
        ("bad.jsonl", '["not", "an object"]\n', r"bad\.jsonl:1: expected an object"),
        (
            "bad.json",
            '[{"conversations": [{"from": "human", "value": "hi"}]}]',
            r"bad\.json:1: conversation has no user turn",
        ),
    ],
)
def test_malformed_instruction_files_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BabeltuneError, match=message):
        examples_from_source(str(path), "en")


def test_bad_test_lines_fail_by_default_with_file_and_line(tmp_path, paper_test_files):
    cfg = TestArgs(source=str(paper_test_files), languages=["en", "es"])
    with pytest.raises(BabeltuneError) as err:
        stage.run_tests(cfg, tmp_path / "out")
    assert f"{paper_test_files / 'test_es.jsonl'}:2: invalid JSON" in str(err.value)
    assert "1 bad line(s)" in str(err.value)


def test_skipping_bad_lines_counts_them_and_aligns_by_line(tmp_path, paper_test_files):
    cfg = TestArgs(source=str(paper_test_files), languages=["en", "es"], on_error="skip")
    rows = read_jsonl(stage.run_tests(cfg, tmp_path / "out"))
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source_id"], {})[r["lang"]] = r["prompt"]
    assert by_source["line-0001"] == {"en": "What is love?", "es": "¿Qué es el amor?"}
    assert by_source["line-0003"] == {"en": "Name a river.", "es": "Nombra un río."}
    assert by_source["line-0002"] == {"en": "Why is the sky blue?"}  # its Spanish line was bad
    manifest = read_json(tmp_path / "out" / "test_manifest.json")
    assert manifest["skipped_lines"] == [
        f"{paper_test_files / 'test_es.jsonl'}:2: invalid JSON: Expecting ',' delimiter (column 52)"
    ]
    assert manifest["prompts_missing_in_some_language"] == ["line-0002 (missing in es)"]


def test_explicit_language_files(tmp_path, paper_test_files):
    cfg = TestArgs(source="builtin", languages=["en"], files={"en": str(paper_test_files / "test_en.jsonl")})
    rows = read_jsonl(stage.run_tests(cfg, tmp_path / "out"))
    assert [r["prompt"] for r in rows] == ["What is love?", "Why is the sky blue?", "Name a river."]


def test_data_stage_reads_a_user_file(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(ALPACA))
    out = stage.run(DataArgs(source=str(path), languages=["en"], source_language="en"), tmp_path / "d")
    assert len(read_jsonl(out)) == 2
