import pytest

from babeltune.config import EvaluateArgs, JudgeArgs, LangIdArgs
from babeltune.evaluate import run
from babeltune.evaluate.judge import load_prompt
from babeltune.evaluate.langid import TOO_SHORT, detect
from babeltune.io import read_json, read_jsonl, write_jsonl


def test_language_id_on_real_sentences():
    texts = [
        "The weather is lovely today, so we are going for a walk in the park.",
        "Hoy hace buen tiempo, así que vamos a dar un paseo por el parque.",
        "Сегодня хорошая погода, поэтому мы идём гулять в парк.",
        "今天天气很好，所以我们去公园散步。",
        "Hva gjør du i helga? Vi skal på hytta og gå på ski hele dagen.",
        "ok",
        "```python\nprint('hello world and more code here')\n```",
    ]
    found = [d.lang for d in detect(texts, LangIdArgs())]
    assert found == ["en", "es", "ru", "zh", "no", TOO_SHORT, TOO_SHORT]


def judge_reply(body, attempt):
    """A rule-based 'judge' behind the chat-completions protocol."""
    answer = body["messages"][-1]["content"].split("[The start of the assistant's answer]")[1]
    if "Paris" in answer:
        return "Correct and concise. Rating: [[3]]"
    if "???" in answer:
        return "I cannot decide."
    return "Unhelpful. Rating: [[1]]"


@pytest.fixture()
def judge_server(chat_server, monkeypatch):
    monkeypatch.setenv("BT_TEST_KEY", "sk-test-not-a-real-key")
    return chat_server(judge_reply)


def _responses(tmp_path):
    rows = [
        (
            "q1:en",
            "en",
            "What is the capital of France?",
            "The capital of France is Paris, a large city.",
            "Paris is the capital of France.",
        ),
        (
            "q1:fr",
            "fr",
            "Quelle est la capitale de la France ?",
            "The capital of France is Paris, a large city.",
            "Paris est la capitale de la France.",
        ),
        (
            "q2:en",
            "en",
            "Tell me a joke.",
            "??? I do not know any jokes at all, sorry about that.",
            "Why did the chicken cross the road?",
        ),
        (
            "q3:en",
            "en",
            "Name a colour.",
            "Blue is a colour that many people like very much.",
            "Red is a colour.",
        ),
    ]
    path = tmp_path / "responses.jsonl"
    write_jsonl(
        path,
        [
            {
                "id": i,
                "source_id": i.split(":")[0],
                "lang": lang,
                "run": "m/lora/x",
                "prompt": q,
                "response": a,
                "reference": ref,
            }
            for i, lang, q, a, ref in rows
        ],
    )
    return path


def test_paper_score_is_judge_times_language_match(tmp_path, judge_server):
    cfg = EvaluateArgs(
        judge=JudgeArgs(backend="openai", base_url=judge_server.url, model="judge", api_key_env="BT_TEST_KEY")
    )
    scores = {r["id"]: r for r in read_jsonl(run(cfg, _responses(tmp_path), tmp_path / "eval"))}
    assert scores["q1:en"]["judge_score"] == 3 and scores["q1:en"]["final_score"] == 3
    # Right content, wrong language: the judge liked it, the language check zeroes it.
    assert scores["q1:fr"]["detected_lang"] == "en" and scores["q1:fr"]["lang_match"] is False
    assert scores["q1:fr"]["judge_score"] == 3 and scores["q1:fr"]["final_score"] == 0
    # Unparsable judgement: None with the raw text kept, and counted.
    assert scores["q2:en"]["judge_score"] is None and scores["q2:en"]["final_score"] is None
    assert scores["q2:en"]["judge_raw"] == "I cannot decide."
    assert read_json(tmp_path / "eval" / "evaluation.json")["judge"]["unparsable"] == 1
    assert scores["q3:en"]["final_score"] == 1
    assert scores["q1:en"]["chrf"] > scores["q3:en"]["chrf"]
    assert judge_server.calls == 4
    # A rerun answers from the judgement cache: zero new calls.
    run(cfg, _responses(tmp_path), tmp_path / "eval")
    assert judge_server.calls == 4
    # The key never reaches a file.
    assert not any("sk-test-not-a-real-key" in p.read_text() for p in (tmp_path / "eval").iterdir())


def test_missing_api_key_is_a_clear_error(tmp_path, judge_server, monkeypatch):
    from babeltune.registry import BabeltuneError

    monkeypatch.delenv("BT_TEST_KEY")
    cfg = EvaluateArgs(
        judge=JudgeArgs(backend="openai", base_url=judge_server.url, api_key_env="BT_TEST_KEY")
    )
    with pytest.raises(BabeltuneError, match="BT_TEST_KEY is not set"):
        run(cfg, _responses(tmp_path), tmp_path / "eval")


def test_local_judge_reads_a_rating_on_the_scale(tmp_path, tiny_model):
    cfg = EvaluateArgs(judge=JudgeArgs(backend="local", model=tiny_model, max_per_language=1))
    scores = read_jsonl(run(cfg, _responses(tmp_path), tmp_path / "eval"))
    judged = [r for r in scores if r["judge_raw"] is not None]
    assert sorted(r["lang"] for r in judged) == ["en", "fr"]  # one per language
    assert all(r["judge_score"] in (1, 2, 3) for r in judged)
    assert all("next-token rating probabilities" in r["judge_raw"] for r in judged)
    assert read_json(tmp_path / "eval" / "evaluation.json")["judge"]["pipeline_check_only"] is False


def test_judge_prompts_are_data():
    prompt = load_prompt("paper-1to3")
    assert prompt.scale == (1, 3)
    text = prompt.messages("¿Qué hora es?", "Son las tres.", "es")[1]["content"]
    assert "Spanish" in text and "¿Qué hora es?" in text and "[[" in text
    assert load_prompt("mtbench-1to10").scale == (1, 10)
