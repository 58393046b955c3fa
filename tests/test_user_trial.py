"""What a new user hits, tried the way they tried it: through the `babeltune` command and the README."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from babeltune.io import read_json
from conftest import REPO, babeltune, tiny_config


def _metrics(run_dir):
    return [read_json(p) for p in sorted((run_dir / "train").glob("*/metrics.json"))]


def test_a_one_step_run_learns_and_a_run_that_learns_nothing_says_so(tmp_path, tiny_model):
    one_step = "{epochs: 1, batch_size: 8, grad_accum: 1, learning_rate: 5.0e-2, warmup_ratio: 0.05}"
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run", train=one_step, mix="{regimes: [english-only]}"
    )
    proc = babeltune("train", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (metrics,) = _metrics(tmp_path / "run")
    assert metrics["steps"] == 1 and metrics["learned"] is True
    assert metrics["probe_loss_after"] < metrics["probe_loss_before"]  # the only step is not spent at lr 0
    assert "{'loss'" not in proc.stdout + proc.stderr  # no raw Trainer dicts...
    assert re.search(r"train tiny-llama\d+-lora-en-only-\w+: 100%\|.*1/1 .*loss=", proc.stderr)  # ...a bar

    frozen = "{epochs: 1, batch_size: 8, grad_accum: 1, learning_rate: 1.0e-12}"
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run2", train=frozen, mix="{regimes: [english-only]}"
    )
    proc = babeltune("train", str(cfg))
    assert proc.returncode == 0 and "moved neither its loss" in proc.stderr
    assert _metrics(tmp_path / "run2")[0]["learned"] is False


@pytest.mark.e2e
def test_the_readme_python_snippet_runs_and_its_models_learn(tmp_path):
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("## Python API")[1].split("```python")[1].split("```")[0]
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "quick.yaml", tmp_path / "configs" / "quick.yaml")
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("report.html")
    metrics = _metrics(tmp_path / "runs" / "quick")
    assert len(metrics) == 3 and all(
        m["learned"] and m["probe_loss_after"] < m["probe_loss_before"] for m in metrics
    )
    assert json.loads((tmp_path / "runs" / "quick" / "report").glob("*/finding.json").__next__().read_text())[
        "runs"
    ]


def _alpaca(path, records):
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2))  # one field a line: records span lines
    return path


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


def _test_files(folder, ids_by_lang, bom=False):
    folder.mkdir()
    for lang, ids in ids_by_lang.items():
        text = "".join(
            json.dumps({"id": i, "prompt": f"Question {i} in {lang}, please answer it."}) + "\n" for i in ids
        )
        (folder / f"test_{lang}.jsonl").write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return folder


def test_test_files_keep_their_own_ids_accept_a_bom_and_say_what_they_skipped(
    tmp_path, tiny_model, chat_server
):
    tests = _test_files(tmp_path / "tests", {"en": ["EN-1", "EN-2"], "es": ["ES-7", "ES-9"]}, bom=True)
    (tests / "test_es.jsonl").write_text(
        (tests / "test_es.jsonl").read_text(encoding="utf-8") + "{broken\n", encoding="utf-8"
    )
    server = chat_server(
        lambda body, attempt: (
            "Rating: [[3]]" if "Question EN-1" in _last(body) or "ES-7" in _last(body) else "Rating: [[1]]"
        )
    )
    evaluate = f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null}}}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate,
                      test=f'{{source: "{tests}", languages: [en, es], on_error: skip}}')  # fmt: skip
    proc = babeltune("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test prompts: skipped 1 bad line(s)" in proc.stderr  # on the console, not only in the manifest
    # The test files have no references: chrF is left out of the report with one line; the judge ran, so the
    # finding gives its score beside fidelity (issue 26, item 6).
    (page,) = (tmp_path / "run" / "report").glob("*/report.html")
    html = page.read_text()
    assert "Left out: chrF, as no test prompt has a reference answer." in html and "<th>chrF</th>" not in html
    finding = html.partition("<section id='finding'>")[2].partition("</section>")[0]
    assert "seen non-English: mean score</th>" in finding and "(judge score): not tested" in finding
    (folder,) = (tmp_path / "run" / "tests").iterdir()
    manifest = read_json(folder / "test_manifest.json")
    assert set(manifest["files"]) == {"en", "es"} and all(
        len(f["sha256"]) == 64 for f in manifest["files"].values()
    )
    prompts = [json.loads(line) for line in (folder / "test_prompts.jsonl").read_text().splitlines()]
    assert {(p["id"], p["file_id"]) for p in prompts} == {("line-0001:en", "EN-1"), ("line-0002:en", "EN-2"),
                                                         ("line-0001:es", "ES-7"), ("line-0002:es", "ES-9")}  # fmt: skip
    human = tmp_path / "human.csv"  # keyed by the test files' own ids, as the paper's human scores are
    runs = {
        p["run"]
        for f in (tmp_path / "run" / "evaluate").glob("*/scores.jsonl")
        for p in map(json.loads, f.open())
    }
    assert len(runs) == 2
    human.write_text("id,run,score\n" + "".join(f"{i},{r},{s}\n" for r in sorted(runs)
                                                 for i, s in (("EN-1", 3), ("EN-2", 1), ("ES-7", 3), ("ES-9", 1))))  # fmt: skip
    agree = babeltune("judge-agreement", str(human), str(tmp_path / "run"))
    assert agree.returncode == 0, agree.stderr
    assert re.search(r"│ en\s+│ 4\s+│ 2", agree.stdout) and re.search(r"│ es\s+│ 4\s+│ 2", agree.stdout)


def _last(body):
    return body["messages"][-1]["content"]


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


def test_plan_and_mix_agree_on_c_after_translation_drops_items(tmp_path, tiny_model, chat_server):
    server = chat_server(
        lambda body, attempt: (
            _last(body).partition("\n\n")[2] if "Write" in _last(body) else f"[es] {_last(body)}"
        )
    )
    translate = (f'{{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: null, '
                 "check_language: false, min_length_ratio: 0.0, max_length_ratio: 100.0}")  # fmt: skip
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate,
                      data="{languages: [en, es], max_examples_per_language: 24}")  # fmt: skip
    assert babeltune("translate", str(cfg)).returncode == 0
    (folder,) = (tmp_path / "run" / "translate").iterdir()
    kept = sum(
        json.loads(line)["lang"] == "es" for line in (folder / "examples.jsonl").read_text().splitlines()
    )
    assert 0 < kept < 24  # untranslated items were filtered out
    plan = babeltune("plan", str(cfg)).stdout
    assert f"C = {kept} examples (one monolingual run; the smallest language: es has {kept} examples)" in plan
    assert babeltune("mix", str(cfg)).returncode == 0
    manifest = read_json(next((tmp_path / "run" / "mix").glob("*/en-only/manifest.json")))
    assert (
        manifest["budget_C"] == kept
        and manifest["budget_reason"] == f"the smallest language: es has {kept} examples"
    )


def test_a_reply_without_choices_is_a_readable_failure_and_a_failed_stage_leaves_no_folder(
    tmp_path, tiny_model, chat_server
):
    server = chat_server(
        lambda body, attempt: ("raw", b'{"id": "x", "object": "chat.completion", "model": "j"}')
    )
    evaluate = f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null, max_retries: 1}}}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate)
    assert babeltune("run", str(cfg)).returncode == 3
    errors = {
        json.loads(line)["judge_error"]
        for p in (tmp_path / "run" / "evaluate").glob("*/scores.jsonl")
        for line in p.open()
    }
    assert errors == {"MalformedReply: the reply has no choices (after 2 attempts)"}

    translate = (
        '{enabled: true, backend: openai, model: mt, base_url: "http://127.0.0.1:9/v1", api_key_env: null}'
    )
    cfg = tiny_config(tmp_path / "exp2.yaml", tiny_model, tmp_path / "run2", translate=translate)
    assert babeltune("translate", str(cfg)).returncode == 2
    assert not (tmp_path / "run2" / "translate").exists() or not list(
        (tmp_path / "run2" / "translate").iterdir()
    )


def test_a_judge_prompt_of_your_own_by_path(tmp_path, tiny_model):
    own = tmp_path / "strict-judge.yaml"
    text = (
        (REPO / "src/babeltune/resources/judges/paper-1to3.yaml")
        .read_text()
        .replace("name: paper-1to3", "name: strict")
    )
    own.write_text(text.replace("You are a fair", "You are a very strict"))
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run")
    assert babeltune("evaluate", str(cfg), f"--evaluate.judge.prompt={own}").returncode == 0
    evaluation = read_json(next((tmp_path / "run" / "evaluate").glob("*/evaluation.json")))
    assert evaluation["judge"]["prompt"] == str(own)
    md = next((tmp_path / "run").glob("report/*/summary.md"), None)
    assert md is None  # `evaluate` stops before the report
    assert babeltune("report", str(cfg), f"--evaluate.judge.prompt={own}").returncode == 0
    md = next((tmp_path / "run").glob("report/*/summary.md")).read_text()
    assert re.search(r"\| \d+% \|", md)  # fidelity in percent, as the console and the HTML show it
