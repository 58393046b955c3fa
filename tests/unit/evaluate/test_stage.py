"""The evaluate stage in process: language verdicts, the judges (local, OpenAI-compatible, pairwise), their
caches and faults, and the scores it writes."""

import pytest

from babeltune.config import EvaluateArgs, JudgeArgs, LangIdArgs
from babeltune.evaluate.judge import load_prompt
from babeltune.io import read_json, read_jsonl, write_jsonl
from babeltune.langid import TOO_SHORT, detect
from helpers.evaluate import run


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


def _pair_runs():
    from dataclasses import replace

    from babeltune.records import Response

    a = [
        Response(f"q{i}:en", f"q{i}", "en", "good", f"Capital of France? ({i})", "It is Paris.")
        for i in range(4)
    ]
    b = [replace(r, run="bad", response="I do not know.", raw="") for r in a]
    return a, b


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


def test_a_generating_local_judge_answers_alike_in_any_batch_size(tmp_path, tiny_model):
    """The local judge's generate mode goes through the generation engine's batches: its judgements do not
    depend on how many share a batch (length-sorted, left-padded)."""
    raws = []
    for size in (1, 3):
        cfg = EvaluateArgs(judge=JudgeArgs(backend="local", model=tiny_model, rating_mode="generate",
                                           max_new_tokens=6, batch_size=size))  # fmt: skip
        out = tmp_path / f"batch{size}"
        scores = read_jsonl(run(cfg, _responses(tmp_path), out / "eval"))
        assert len(scores) == 4 and all(r["judge_raw"] for r in scores)
        assert not any("next-token" in r["judge_raw"] for r in scores)
        raws.append([r["judge_raw"] for r in scores])
    assert raws[0] == raws[1]


def test_judge_prompts_are_data():
    prompt = load_prompt("paper-1to3")
    assert prompt.scale == (1, 3)
    text = prompt.messages("¿Qué hora es?", "Son las tres.", "es")[1]["content"]
    assert "Spanish" in text and "¿Qué hora es?" in text and "[[" in text
    assert load_prompt("mtbench-1to10").scale == (1, 10)


def test_judge_survives_faults_and_reruns_only_failures(tmp_path, chat_server, monkeypatch):
    import zlib

    monkeypatch.setenv("BT_TEST_KEY", "sk-test-not-a-real-key")

    def faulty(body, attempt):
        content = body["messages"][-1]["content"]
        if "Tell me a joke" in content:
            return 500  # this one never gets an answer
        kind = zlib.crc32(content.encode()) % 3
        if attempt == 1 and kind == 0:
            return 429
        if attempt == 1 and kind == 1:
            return ("sleep", 1.5, "too late")
        if attempt == 1 and kind == 2:
            return ("raw", b"{broken")
        return judge_reply(body, attempt)

    server = chat_server(faulty)
    judge = JudgeArgs(backend="openai", base_url=server.url, model="j", api_key_env="BT_TEST_KEY", timeout=0.5,
                      max_retries=2, price_per_million_input=1.0)  # fmt: skip
    scores = {
        r["id"]: r for r in read_jsonl(run(EvaluateArgs(judge=judge), _responses(tmp_path), tmp_path / "e"))
    }
    report = read_json(tmp_path / "e" / "evaluation.json")["judge"]
    assert report["failed"] == 1 and report["judged"] == 3 and report["usage"]["retries"] >= 3
    assert report["usage"]["calls"] == report["usage"]["retries"] + 4 and report["usage"]["cost"] > 0
    assert scores["q2:en"]["judge_score"] is None and "after 3 attempts" in scores["q2:en"]["judge_error"]
    assert scores["q1:en"]["final_score"] == 3 and scores["q3:en"]["final_score"] == 1
    server.reply = judge_reply
    before = server.calls
    run(EvaluateArgs(judge=judge), _responses(tmp_path), tmp_path / "e")
    assert server.calls - before == 1  # only the failed judgement is asked again
    assert read_json(tmp_path / "e" / "evaluation.json")["judge"]["failed"] == 0


def test_a_judge_that_refuses_every_request_stops_with_its_reason(tmp_path, chat_server, monkeypatch):
    """An endpoint that answers every request 400 (max_tokens over its limit) looked like a judge whose every
    rating was unparsable, and evaluate said "rerun to retry them", which could never succeed. Refused before
    it answered anything, the stage stops with the server's reason; a refusal after answers is one item's."""
    from babeltune.registry import BabeltuneError

    monkeypatch.setenv("BT_TEST_KEY", "sk-test-not-a-real-key")
    server = chat_server(lambda body, attempt: ("error", 400, "max_tokens is too large: 512 > 64"))
    judge = JudgeArgs(
        backend="openai", base_url=server.url, model="j", api_key_env="BT_TEST_KEY", concurrency=1
    )
    with pytest.raises(BabeltuneError, match=r"refused the request \(400\): max_tokens is too large: 512 > 64; "
                       "change the setting it names"):  # fmt: skip
        run(EvaluateArgs(judge=judge), _responses(tmp_path), tmp_path / "e")
    assert server.calls == 1  # nothing retried, nothing more sent

    def one_bad_item(body, attempt):
        if "Tell me a joke" in body["messages"][-1]["content"]:
            return ("error", 400, "content filtered")
        return judge_reply(body, attempt)

    server.reply = one_bad_item
    scores = {
        r["id"]: r for r in read_jsonl(run(EvaluateArgs(judge=judge), _responses(tmp_path), tmp_path / "f"))
    }
    assert "content filtered" in scores["q2:en"]["judge_error"] and scores["q1:en"]["judge_score"] is not None


def test_confusable_languages_policy(tmp_path):
    from babeltune.io import write_jsonl

    danish_for_norwegian = "Jeg har ikke tid til at læse bogen i dag, men jeg vil prøve igen i morgen."
    write_jsonl(tmp_path / "r.jsonl", [{"id": "a:no", "source_id": "a", "lang": "no", "run": "r", "prompt": "?",
                                        "response": danish_for_norwegian, "reference": None}])  # fmt: skip
    strict = read_jsonl(
        run(EvaluateArgs(judge=JudgeArgs(enabled=False)), tmp_path / "r.jsonl", tmp_path / "s")
    )[0]
    lenient_cfg = EvaluateArgs(judge=JudgeArgs(enabled=False), langid=LangIdArgs(confusable_policy="lenient"))
    lenient = read_jsonl(run(lenient_cfg, tmp_path / "r.jsonl", tmp_path / "l"))[0]
    assert strict["detected_lang"] == "da" and strict["lang_match"] is False and lenient["lang_match"] is True
    assert read_json(tmp_path / "l" / "evaluation.json")["langid"]["confusable_policy"] == "lenient"


@pytest.mark.parametrize("backend", ["fasttext", "py3langid"])
def test_language_id_backends_on_every_script(backend):
    texts = {
        "en": "The library opens at nine in the morning and closes late in the evening.",
        "bg": "Библиотеката е отворена всеки ден, но в неделя затваря по-рано, защото служителите почиват.",
        "ru": "Библиотека открывается в девять утра и закрывается поздно вечером.",
        "zh": "图书馆早上九点开门，晚上很晚才关门。",
        "bn": "গ্রন্থাগারটি সকাল নয়টায় খোলে এবং সন্ধ্যায় দেরিতে বন্ধ হয়।",
        "hi": "पुस्तकालय सुबह नौ बजे खुलता है और शाम को देर से बंद होता है।",
        "de": "Die Bibliothek öffnet um neun Uhr morgens und schließt spät am Abend.",
        "fi": "Kirjasto aukeaa yhdeksältä aamulla ja sulkeutuu myöhään illalla.",
    }
    found = detect(list(texts.values()), LangIdArgs(backend=backend))
    assert [d.lang for d in found] == list(texts)


def test_pairwise_judge_fair_and_position_biased(tmp_path, chat_server, monkeypatch):
    from babeltune.evaluate import pairwise

    monkeypatch.setenv("BT_TEST_KEY", "k")

    def fair(body, attempt):
        text = body["messages"][-1]["content"]
        answer_a = text.split("[The start of answer A]")[1].split("[The end of answer A]")[0]
        return "A knows. [[A]]" if "Paris" in answer_a else "B knows. [[B]]"

    a, b = _pair_runs()
    for reply, name in ((fair, "fair"), (lambda body, attempt: "First is best. [[A]]", "biased")):
        server = chat_server(reply)
        cfg = EvaluateArgs(judge=JudgeArgs(backend="openai", base_url=server.url, api_key_env="BT_TEST_KEY"))
        summary = read_json(
            pairwise.run(cfg.judge, a, b, ("good", "bad"), tmp_path / name, tmp_path / f"{name}-cache")
        )
        if name == "fair":
            assert summary["overall"]["a_wins"] == 4 and summary["overall"]["flip_rate"] == 0.0
            assert summary["overall"]["first_position_win_rate"] == 0.5
        else:  # a judge that always prefers the first answer: every verdict flips
            assert (
                summary["overall"]["flip_rate"] == 1.0
                and summary["overall"]["first_position_win_rate"] == 1.0
            )
        assert server.calls == 8  # 4 prompts x 2 orders


def test_judge_agreement_item_and_system_level(tmp_path):
    from babeltune.evaluate.agreement import agreement
    from babeltune.records import Score

    judge, human = [], []
    for run_name, quality in (("r1", 1), ("r2", 2), ("r3", 3)):
        for i in range(4):
            score = min(3, quality + (i % 2))
            judge.append(
                Score(f"p{i}:es", f"p{i}", "es", run_name, "", "es", "ok", True, score, "", score, None)
            )
            human.append({"id": f"p{i}:es", "run": run_name, "score": quality + (i % 2) * 0.5})
    result = agreement(judge, human)
    es = result["per_language"]["es"]
    assert es["items"] == 12 and es["item_pearson"] == 0.9165 and es["system_pearson"] == 0.982
    assert es["system_spearman"] == 1.0


def test_a_wrong_language_answer_scores_0_even_when_its_judgement_failed_or_was_skipped(
    tmp_path, chat_server
):
    """The paper's rule, always: judge x (verdict ok). q1:fr is answered in English."""
    server = chat_server(lambda body, attempt: 500)  # every judgement fails
    judge = JudgeArgs(backend="openai", base_url=server.url, model="j", api_key_env=None, max_retries=0)
    failed = {
        r["id"]: r for r in read_jsonl(run(EvaluateArgs(judge=judge), _responses(tmp_path), tmp_path / "e"))
    }
    assert failed["q1:fr"]["judge_error"] and failed["q1:fr"]["verdict"] == "wrong-language"
    assert failed["q1:fr"]["final_score"] == 0 and failed["q1:en"]["final_score"] is None  # ok but unjudged
    skipped_cfg = EvaluateArgs(judge=JudgeArgs(backend="openai", base_url=server.url, model="j", api_key_env=None,
                                               max_retries=0, max_per_language=1))  # fmt: skip
    server.reply = lambda body, attempt: "Rating: [[3]]"
    rows = {r["id"]: r for r in read_jsonl(run(skipped_cfg, _responses(tmp_path), tmp_path / "s"))}
    skipped = [r for r in rows.values() if r["judge_raw"] is None]
    assert skipped and all(r["final_score"] == (0 if r["verdict"] != "ok" else None) for r in skipped)
    assert rows["q1:fr"]["final_score"] == 0 and rows["q1:fr"]["judge_score"] == 3  # judged 3, scored 0


def test_scores_say_what_each_answer_is(tmp_path):
    """Verdicts in the score rows: echo, template, empty and a correct answer, through the stage."""
    rows = [
        (
            "e:es",
            "es",
            "¿Cuál es la capital de España y por qué?",
            "¿Cuál es la capital de España y por qué?",
        ),
        ("t:es", "es", "Dime un color.", "### Response:"),
        ("m:es", "es", "Dime un número.", "   "),
        (
            "o:es",
            "es",
            "¿Cuál es la capital de España?",
            "La capital de España es Madrid, una ciudad muy grande.",
        ),
    ]
    write_jsonl(tmp_path / "r.jsonl", [{"id": i, "source_id": i.split(":")[0], "lang": lang, "run": "r", "prompt": q,
                                         "response": a, "reference": None} for i, lang, q, a in rows])  # fmt: skip
    scores = run(EvaluateArgs(judge=JudgeArgs(enabled=False)), tmp_path / "r.jsonl", tmp_path / "v")
    verdicts = {r["id"]: (r["verdict"], r["lang_match"], r["final_score"]) for r in read_jsonl(scores)}
    assert verdicts == {
        "e:es": ("echo", False, None),
        "t:es": ("template", False, None),
        "m:es": ("empty", False, None),
        "o:es": ("ok", True, None),
    }  # no judge: no scores at all
