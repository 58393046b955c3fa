"""`babeltune data` on real files: every bad record listed at once with its true line, devices, pipes and
folders refused in one line, conversations and test files read as the README says."""

import json
import os
import time

import pytest

from babeltune.data.loaders import examples_from_source
from babeltune.io import read_json
from conftest import babeltune, tiny_config
from helpers.cli import one_line_error


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _alpaca(path, records):
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2))  # one field a line: records span lines
    return path


def test_a_test_file_with_an_id_twice_is_refused_naming_both_lines(tmp_path, tiny_model):
    tests = tmp_path / "tests"
    tests.mkdir()
    for lang in ("en", "es"):
        rows = [
            {"id": "q1", "prompt": f"{lang} one"},
            {"id": "q2", "prompt": f"{lang} two"},
            {"id": "q1", "prompt": "x"},
        ]
        (tests / f"test_{lang}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = f'{{source: "{tests}", languages: [en, es], align: id}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", test=test)
    proc = babeltune("data", str(cfg))  # every bad line is listed, one a line
    assert (
        proc.returncode == 2
        and f"{tests / 'test_en.jsonl'}:3: duplicate id 'q1' (also on line 1)" in proc.stderr
    )
    skipped = babeltune("data", str(cfg), "--test.on_error=skip")
    assert skipped.returncode == 0, skipped.stderr
    (folder,) = (tmp_path / "run" / "tests").iterdir()
    prompts = [json.loads(line) for line in (folder / "test_prompts.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in prompts) == ["q1:en", "q1:es", "q2:en", "q2:es"]
    assert {p["id"]: p["prompt"] for p in prompts}["q1:en"] == "en one"  # the first, not the duplicate


def test_training_data_with_an_id_twice_is_refused(tmp_path, tiny_model):
    data = tmp_path / "alpaca.jsonl"
    data.write_text(
        "".join(json.dumps({"id": i, "instruction": "Do it", "output": "Done"}) + "\n" for i in (1, 2, 1))
    )
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", data=f'{{source: "{data}", languages: [en]}}',
                      mix="{regimes: [english-only]}", test="{languages: [en]}")  # fmt: skip
    assert f"{data}:3: duplicate id '1' (also at {data}:1)" in one_line_error(babeltune("data", str(cfg)))


@pytest.mark.parametrize(
    ("where", "make", "message"),
    [
        ("config", lambda tmp: "/dev/zero", "is not a regular file"),
        ("config", _fifo, "is not a regular file"),
        ("config", lambda tmp: tmp, "is a folder, not a file"),
        ("data", lambda tmp: "/dev/zero", "is not a regular file"),
        ("data", _fifo, "is not a regular file"),
        ("data", lambda tmp: tmp, "a folder, but not a datasets save_to_disk folder"),
        ("test", lambda tmp: "/dev/zero", "is not a regular file"),
        ("test", _fifo, "is not a regular file"),
        ("test", lambda tmp: tmp, "is a folder, not a file"),
        (
            "data",
            lambda tmp: (tmp / "loop").symlink_to(tmp / "loop") or tmp / "loop",
            "Too many levels of symbolic links",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_devices_pipes_and_folders_are_clear_errors(tmp_path, tiny_model, where, make, message):
    target = str(make(tmp_path))
    if where == "config":
        cmd = ["data", target]
    else:
        group = (f'{{source: "{target}", languages: [en]}}' if where == "data"
                 else f'{{files: {{en: "{target}"}}, languages: [en]}}')  # fmt: skip
        cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", **{where: group},
                          mix="{regimes: [english-only]}", **({"data": "{languages: [en]}"} if where == "test" else {}))  # fmt: skip
        cmd = ["data", str(cfg)]
    start = time.perf_counter()
    line = one_line_error(babeltune(*cmd, timeout=60))
    assert message in line and time.perf_counter() - start < 10


def test_a_huge_jsonl_line_is_refused_naming_the_limit(tmp_path, tiny_model):
    data = tmp_path / "big.jsonl"
    data.write_text(json.dumps({"instruction": "x" * 5_000_000, "output": "y"}) + "\n")
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", data=f'{{source: "{data}", languages: [en]}}',
                      mix="{regimes: [english-only]}", test="{languages: [en]}")  # fmt: skip
    line = one_line_error(babeltune("data", str(cfg)))
    assert f"{data}:1: line over 4,000,000 bytes (data.max_record_bytes raises the limit)" in line


def test_a_large_alpaca_array_reads_in_linear_time_and_names_a_bad_records_true_line(tmp_path):
    """20,000 indented records (about 100,000 lines): read in well under 5 s (counting lines from the start
    for every record took 49 s); a broken record near the end is named by the line it is on."""
    import time

    from conftest import babeltune

    rows = [
        {"instruction": f"Item {i}: say something", "input": "", "output": "word " * 40}
        for i in range(20_000)
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(rows, indent=4))
    start = time.perf_counter()
    examples = examples_from_source(str(path), "en")
    assert len(examples) == 20_000 and time.perf_counter() - start < 5
    text = path.read_text()
    cut = text.rindex('"instruction"')  # the last record
    path.write_text(text[:cut] + '"instruction" "no colon",' + text[cut + len('"instruction":') :])
    line = text.count("\n", 0, cut) + 1
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"# babeltune data exp.yaml\nname: big\noutput_dir: {tmp_path / 'run'}\n"
                   f"data: {{source: {path}, languages: [en], source_language: en}}\n")  # fmt: skip
    proc = babeltune("data", str(cfg), timeout=120)
    assert proc.returncode == 2 and f"alpaca.json:{line}: invalid JSON" in proc.stderr, proc.stderr


def test_test_file_flaws_reach_the_console_under_both_alignments(tmp_path):
    """Issue 26, item 7: the paper's files share one id per line, except zh line 13; a line one
    language lacks. Both are said on the console, whichever way the languages are joined."""
    from conftest import babeltune

    folder = tmp_path / "tests"
    folder.mkdir()
    ids = ["uuid-a", "uuid-b", "uuid-c"]
    for lang, own in {"en": ids, "es": ids, "zh": ["uuid-a", "uuid-x", "uuid-c"]}.items():
        lines = [json.dumps({"id": i, "prompt": f"{lang} prompt {n}"}) for n, i in enumerate(own)]
        (folder / f"test_{lang}.jsonl").write_text("\n".join(lines if lang != "es" else lines[:2]) + "\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: flaws\noutput_dir: {tmp_path / 'run'}\ndata: {{languages: [en]}}\n"
                   f"test: {{source: {folder}, languages: [en, es, zh]}}\n")  # fmt: skip
    by_line = babeltune("data", str(cfg))
    assert by_line.returncode == 0, by_line.stderr
    assert "1 line(s) whose ids differ across languages" in by_line.stderr
    assert "line-0002: zh has 'uuid-x', the others 'uuid-b'" in by_line.stderr
    assert "1 prompt(s) missing in some language" in by_line.stderr
    assert "line-0003 (missing in es)" in by_line.stderr
    by_id = babeltune("data", str(cfg), "--test.align=id")
    assert by_id.returncode == 0, by_id.stderr
    assert "ids differ" not in by_id.stderr
    assert "3 prompt(s) missing in some language" in by_id.stderr
    for line in ("uuid-b (missing in zh)", "uuid-c (missing in es)", "uuid-x (missing in en, es)"):
        assert line in by_id.stderr


def test_every_bad_record_is_listed_at_once_with_its_true_line_or_skipped_and_counted(tmp_path, tiny_model):
    good = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    records = [
        good,
        {"instruction": "", "output": "x"},
        good | {"id": "a"},
        {"instruction": "Hi"},
        good | {"id": "a"},
    ]
    data = _alpaca(tmp_path / "alpaca_en.json", records)
    lines = [i + 1 for i, line in enumerate(data.read_text().splitlines()) if line == "  {"]
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", data=f'{{source: "{data}", languages: [en]}}',
                      mix="{regimes: [english-only]}", test="{languages: [en]}")  # fmt: skip
    proc = babeltune("data", str(cfg))
    assert proc.returncode == 2 and "3 bad record(s)" in proc.stderr
    for line, reason in ((lines[1], "empty instruction"), (lines[3], "missing or non-string field(s): output"),
                         (lines[4], f"duplicate id 'a' (also at {data}:{lines[2]})")):  # fmt: skip
        assert f"{data}:{line}: {reason}" in proc.stderr
    skipped = babeltune("data", str(cfg), "--data.on_error=skip")
    assert skipped.returncode == 0 and "data: skipped 3 bad record(s)" in skipped.stderr
    (folder,) = (tmp_path / "run" / "data").iterdir()
    (source,) = read_json(folder / "data_manifest.json")["sources"]
    assert source["source"] == str(data) and source["field"] == "data.source"
    assert (source["records"], source["examples"], source["skipped"]) == (5, 2, 3) and len(
        source["sha256"]
    ) == 64


def test_sharegpt_conversations_give_first_or_every_turn_counted(tmp_path, tiny_model):
    convo = {"conversations": [{"from": "human", "value": "Hi, who are you?"}, {"from": "gpt", "value": "A helper."},
                               {"from": "human", "value": "What can you do?"}, {"from": "gpt", "value": "Answer questions."}]}  # fmt: skip
    data = tmp_path / "chats.jsonl"
    data.write_text(json.dumps(convo) + "\n" + json.dumps(convo | {"id": "c2"}) + "\n")
    for turns, examples in (("first", 2), ("all", 4)):
        cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / turns, data=f'{{source: "{data}", languages: [en], '
                          f'sharegpt_turns: {turns}}}', mix="{regimes: [english-only]}", test="{languages: [en]}")  # fmt: skip
        assert babeltune("data", str(cfg)).returncode == 0
        (folder,) = (tmp_path / turns / "data").iterdir()
        rows = [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]
        (source,) = read_json(folder / "data_manifest.json")["sources"]
        assert len(rows) == examples and (source["conversation_turns"], source["turns_used"]) == (4, examples)
    assert (
        rows[1]["instruction"] == "What can you do?"
        and rows[1]["input"] == "User: Hi, who are you?\nAssistant: A helper."
    )


def test_a_test_source_that_is_a_file_says_so(tmp_path, tiny_model):
    file = tmp_path / "test_en.jsonl"
    file.write_text('{"prompt": "Hi"}\n')
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run", test=f'{{source: "{file}", languages: [en]}}'
    )
    proc = babeltune("data", str(cfg))
    assert (
        proc.returncode == 2
        and f"test.source: {file} is a file; it names a folder of test_<lang>.jsonl" in proc.stderr
    )
