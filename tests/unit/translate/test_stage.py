"""The translate stage through both backends: caching, resume, protection, filters, faults."""

import json
import zlib

import pytest

from babeltune.config import TranslateArgs
from babeltune.data import loaders
from babeltune.io import read_json, read_jsonl, write_jsonl
from babeltune.records import Example
from babeltune.registry import BabeltuneError
from babeltune.translate import run
from babeltune.translate.backends import BACKENDS, HFTranslator

KEY = "sk-translate-test-secret-123"


def oracle(examples):
    """An 'MT system' that knows the built-in human translations: perfect output for known texts."""
    known = {}
    for en in [e for e in examples if e.lang == "en"]:
        for other in [e for e in examples if e.source_id == en.source_id and e.lang != "en"]:
            for field in ("instruction", "input", "output"):
                known[(getattr(en, field).strip(), other.lang)] = getattr(other, field).strip()
    names = {"German": "de", "French": "fr"}

    def translate(text_block):
        head, _, text = text_block.partition("\n\n")
        tgt = next(code for name, code in names.items() if f"into {name}" in head)
        return known.get((text, tgt), f"[{tgt}] {text}")

    return translate


def faulty(translate):
    """First attempts fail in every way the issue names; one text fails forever."""

    def reply(body, attempt):
        content = body["messages"][-1]["content"]
        if "ALWAYS-FAILS" in content:
            return 500
        kind = zlib.crc32(content.encode()) % 5
        if attempt == 1 and kind == 0:
            return 429
        if attempt == 1 and kind == 1:
            return 500
        if attempt == 1 and kind == 2:
            return ("sleep", 1.5, "too late")  # past the client's timeout
        if attempt == 1 and kind == 3:
            return ("raw", b"{not json")
        return translate(content)

    return reply


@pytest.mark.slow
def test_hf_backend_translates_caches_and_resumes(tmp_path, english, tiny_marian):
    cfg = TranslateArgs(enabled=True, backend="hf", model=tiny_marian, batch_size=4, max_length=24)
    cache = tmp_path / "cache"
    # A random model produces junk: every translation rejected is an error, after writing what it made.
    with pytest.raises(
        BabeltuneError, match=r"translate en -> de: none of 8 translations passed .*rejected.jsonl"
    ):
        run(cfg, english, "en", ["de", "fr"], tmp_path / "t1", cache)
    report = read_json(tmp_path / "t1" / "translate_report.json")
    de = report["languages"]["de"]
    assert de["items"] == 8 and de["cache_hits"] == 0 and de["translated_now"] == de["segments"] > 8
    assert de["accepted"] + de["rejected"] + de["failed"] == 8
    assert report["usage"]["calls"] == 2 * -(-de["segments"] // 4)  # ceil(segments / batch) per language
    # A random model produces junk: the filters must say so, with reasons beside each item.
    rejected = read_jsonl(tmp_path / "t1" / "rejected.jsonl")
    assert len(rejected) == de["rejected"] + report["languages"]["fr"]["rejected"] > 0
    assert all(r["reasons"] and r["lang"] in ("de", "fr") for r in rejected)
    assert sum(de["reasons"].values()) >= de["rejected"]
    assert set(read_json(tmp_path / "t1" / "mt_quality.json")) == {"de", "fr"}
    assert isinstance(read_json(tmp_path / "t1" / "alpaca_de.json"), list)
    # Second run of the same translation: every segment from the cache, zero model calls.
    with pytest.raises(BabeltuneError):
        run(cfg, english, "en", ["de", "fr"], tmp_path / "t2", cache)
    again = read_json(tmp_path / "t2" / "translate_report.json")
    assert again["usage"]["calls"] == 0
    assert again["languages"]["de"]["cache_hits"] == de["segments"]
    assert (tmp_path / "t2" / "examples.jsonl").read_bytes() == (
        tmp_path / "t1" / "examples.jsonl"
    ).read_bytes()


def test_hf_batches_are_sorted_by_length(tiny_marian):
    cfg = TranslateArgs(backend="hf", model=tiny_marian, batch_size=3, max_length=8)
    texts = [
        "a b",
        "a much longer sentence than the others here",
        "mid size text",
        "x",
        "another medium one",
        "tiny",
    ]
    batches = []
    HFTranslator(cfg).translate(
        texts, "en", "de", lambda pairs: batches.append(list(pairs)), lambda t, r: None
    )
    lengths = [len(t) for batch in batches for t in batch]
    assert lengths == sorted(lengths, reverse=True) and len(batches) == 2


def test_openai_backend_survives_faults_and_reruns_only_failures(tmp_path, english, chat_server, monkeypatch):
    monkeypatch.setenv("BT_KEY", KEY)
    examples = loaders.builtin_examples(["en", "de", "fr"])
    rows = read_jsonl(english)
    rows.append(
        Example(
            "z:en", "z", "en", "ALWAYS-FAILS in this sentence, please.", "", "Fine output text here."
        ).to_dict()
    )
    write_jsonl(english, rows)
    server = chat_server(faulty(oracle(examples)))
    cfg = TranslateArgs(
        enabled=True,
        backend="openai",
        model="mt",
        base_url=server.url,
        api_key_env="BT_KEY",
        concurrency=4,
        max_retries=3,
        timeout=0.5,
        price_per_million_input=1.0,
        price_per_million_output=2.0,
    )
    cache = tmp_path / "cache"
    run(cfg, english, "en", ["de", "fr"], tmp_path / "t1", cache)
    report = read_json(tmp_path / "t1" / "translate_report.json")
    assert report["usage"]["retries"] > 0 and report["usage"]["cost"] > 0
    for lang in ("de", "fr"):
        rep = report["languages"][lang]
        assert rep["failed"] == 1 and rep["accepted"] == 8, rep  # every item done or explicitly failed
    failed = read_jsonl(tmp_path / "t1" / "failed.jsonl")
    assert [(f["source_id"], f["lang"]) for f in failed] == [("z", "de"), ("z", "fr")]
    assert "InternalServerError" in failed[0]["reasons"][0] and "after 4 attempts" in failed[0]["reasons"][0]
    # The oracle returned the human translations, so the MT quality measurement must see them.
    quality = read_json(tmp_path / "t1" / "mt_quality.json")
    assert quality["de"]["chrF"] > 95 and quality["fr"]["BLEU"] > 90
    translated = {(e["source_id"], e["lang"]): e for e in read_jsonl(tmp_path / "t1" / "examples.jsonl")}
    assert translated[("inst-001", "de")]["output"] == next(
        e.output for e in examples if e.id == "inst-001:de"
    )

    # Rerun against a healthy server: only the failed segment is requested again.
    calls = server.calls
    server.reply = lambda body, attempt: oracle(examples)(body["messages"][-1]["content"])
    run(cfg, english, "en", ["de", "fr"], tmp_path / "t2", cache)
    assert server.calls - calls == 2  # one segment x two languages
    assert read_jsonl(tmp_path / "t2" / "failed.jsonl") == []
    # The API key never reaches a file.
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_code_urls_and_numbers_never_reach_the_translator(tmp_path, chat_server, monkeypatch):
    monkeypatch.setenv("BT_KEY", KEY)
    seen = []

    def reply(body, attempt):
        text = body["messages"][-1]["content"].partition("\n\n")[2]
        seen.append(text)
        return "ÜBERSETZT " + text  # keeps markers, as instructed

    server = chat_server(reply)
    src = tmp_path / "examples.jsonl"
    code = "```python\nprint('hello world')\n```"
    write_jsonl(
        src,
        [
            Example(
                "c:en",
                "c",
                "en",
                "Explain what `print` does, see https://docs.python.org/3/ for more.",
                "3.5 + 4 = 7.5",
                f"It writes text to the screen.\n{code}\nThat is all.",
            ).to_dict()
        ],
    )
    cfg = TranslateArgs(
        backend="openai", model="mt", base_url=server.url, api_key_env="BT_KEY", check_language=False
    )
    run(cfg, src, "en", ["de"], tmp_path / "t", tmp_path / "cache")
    assert not any("```" in t or "http" in t or "`print`" in t or "7.5" in t for t in seen)
    (out,) = [e for e in read_jsonl(tmp_path / "t" / "examples.jsonl") if e["lang"] == "de"] or [
        e for e in read_jsonl(tmp_path / "t" / "rejected.jsonl")
    ]
    assert (
        out["instruction"] == "ÜBERSETZT Explain what `print` does, see https://docs.python.org/3/ for more."
    )
    assert out["input"] == "3.5 + 4 = 7.5"
    assert code in out["output"] and out["output"].startswith("ÜBERSETZT It writes")
    assert len(seen) == 3  # instruction, and the two prose parts around the code block


def test_cli_translate_turns_an_alpaca_file_into_target_language_files(tmp_path, tiny_marian, capsys):
    from babeltune.cli import main

    alpaca = [
        {"instruction": e.instruction, "input": e.input, "output": e.output}
        for e in loaders.builtin_examples(["en"])[:5]
    ]
    (tmp_path / "alpaca.json").write_text(json.dumps(alpaca))
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        f"# babeltune translate exp.yaml\nname: t\noutput_dir: {tmp_path / 'run'}\n"
        f"data: {{source: {tmp_path / 'alpaca.json'}, languages: [en, de, fr]}}\n"
        f"translate: {{enabled: true, backend: hf, model: {tiny_marian}, max_length: 16, check_language: false,"
        " min_length_ratio: 0.0, max_length_ratio: 100.0}\n"
    )
    assert main(["translate", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "translation en -> ..." in out and "cache_hits" in out
    (folder,) = (tmp_path / "run" / "translate").iterdir()
    for lang in ("de", "fr"):
        rows = read_json(folder / f"alpaca_{lang}.json")
        assert len(rows) + sum(1 for r in read_jsonl(folder / "rejected.jsonl") if r["lang"] == lang) == 5
        assert all(set(r) == {"instruction", "input", "output"} for r in rows)
    assert not (tmp_path / "run" / "mix").exists()  # `translate` stops after translating


def test_ctranslate2_follows_the_same_greedy_path_as_hf(tmp_path, tiny_marian, monkeypatch):
    monkeypatch.setenv("BABELTUNE_CACHE", str(tmp_path / "cache"))
    texts = ["Write a short poem about the sea.", "What is 2 + 2?", "Name three colours."]
    outputs = {}
    for backend in ("hf", "ctranslate2"):
        cfg = TranslateArgs(backend=backend, model=tiny_marian, max_length=12, compute_type="float32")
        BACKENDS.get(backend)(cfg).translate(texts, "en", "de", outputs.setdefault(backend, {}).update, None)
    # transformers forces the end token into the last position (Marian's forced_eos_token_id), so its text
    # is the other's one token shorter: the same greedy path, not just similar junk.
    for text in texts:
        assert outputs["hf"][text] and outputs["ctranslate2"][text].startswith(outputs["hf"][text])
    converted = list((tmp_path / "cache" / "ctranslate2").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.bin").exists()


def test_ctranslate2_converts_once_and_again_after_retraining(tmp_path, english, monkeypatch):
    from babeltune import tiny
    from babeltune.translate.convert import converted

    monkeypatch.setenv("BABELTUNE_CACHE", str(tmp_path / "cache"))
    model = tiny.marian(tmp_path / "mt")
    cfg = TranslateArgs(enabled=True, backend="ctranslate2", model=model, batch_size=4, max_length=24)
    with pytest.raises(BabeltuneError, match="none of 8 translations passed"):  # a random model: junk
        run(cfg, english, "en", ["de"], tmp_path / "t1", tmp_path / "cache")
    report = read_json(tmp_path / "t1" / "translate_report.json")
    de = report["languages"]["de"]
    assert report["usage"]["calls"] == -(-de["segments"] // 4) and report["backend"] == "ctranslate2"
    assert de["failed"] == 0 and de["accepted"] + de["rejected"] == 8  # a random model: junk, but translated
    first = converted(model)
    stamp = (first / "model.bin").stat().st_mtime_ns
    assert converted(model) == first and (first / "model.bin").stat().st_mtime_ns == stamp
    tiny.marian(tmp_path / "mt", d_model=32)  # retrained in the same folder
    assert converted(model) != first and not list((tmp_path / "cache" / "ctranslate2").glob("*.tmp*"))


def test_ctranslate2_names_a_compute_type_this_device_lacks(tiny_marian):
    from babeltune.registry import BabeltuneError

    cfg = TranslateArgs(backend="ctranslate2", model=tiny_marian, compute_type="float16")
    with pytest.raises(BabeltuneError, match="translate.compute_type: float16 is not supported on this cpu"):
        BACKENDS.get("ctranslate2")(cfg).translate(["Hello."], "en", "de", print, print)
