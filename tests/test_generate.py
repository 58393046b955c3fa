import json

import pytest

from babeltune.config import GenerateArgs, ModelArgs, TestArgs
from babeltune.data import stage as data_stage
from babeltune.generate import GenerateJob, run
from babeltune.io import read_jsonl
from babeltune.models import load_tokenizer
from babeltune.templates import build_prompt


@pytest.fixture()
def prompts(tmp_path):
    return data_stage.run_tests(TestArgs(languages=["en", "zh"], max_prompts=3), tmp_path)


def _job(prompts, tiny_model, **gen):
    return GenerateJob(
        prompts,
        ModelArgs(name=tiny_model),
        None,
        None,
        "tiny/base",
        GenerateArgs(max_new_tokens=8, batch_size=4, **gen),
    )


def test_answers_every_prompt_with_the_training_template(tmp_path, prompts, tiny_model):
    path = run(_job(prompts, tiny_model), tmp_path / "gen")
    rows = read_jsonl(path)
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in read_jsonl(prompts))
    tok = load_tokenizer(tiny_model)
    for r in rows:
        assert r["prompt_text"] == build_prompt("alpaca", tok, r["prompt"])
        assert 0 < r["new_tokens"] <= 8
        assert r["decoding"]["max_new_tokens"] == 8 and r["decoding"]["stop"] == ["\n### "]
        assert r["run"] == "tiny/base" and r["reference"]


def test_a_killed_run_resumes_without_redoing_finished_answers(tmp_path, prompts, tiny_model):
    path = run(_job(prompts, tiny_model), tmp_path / "gen")
    lines = path.read_text().splitlines(keepends=True)
    # Simulate a kill: two answers finished, the third torn mid-write.
    path.write_text("".join(lines[:2]) + lines[2][:15])
    kept = [json.loads(line)["id"] for line in lines[:2]]
    run(_job(prompts, tiny_model), tmp_path / "gen")
    again = read_jsonl(path)
    assert len(again) == len(lines)
    assert [r["id"] for r in again[:2]] == kept
    assert len({r["id"] for r in again}) == len(lines)


def test_beam_search_is_deterministic_and_recorded(tmp_path, prompts, tiny_model):
    first = read_jsonl(run(_job(prompts, tiny_model, num_beams=2, no_repeat_ngram_size=2), tmp_path / "a"))
    second = read_jsonl(run(_job(prompts, tiny_model, num_beams=2, no_repeat_ngram_size=2), tmp_path / "b"))
    assert all(r["decoding"]["num_beams"] == 2 and r["decoding"]["no_repeat_ngram_size"] == 2 for r in first)
    key = lambda rows: sorted((r["id"], r["response"]) for r in rows)  # noqa: E731
    assert key(first) == key(second)
