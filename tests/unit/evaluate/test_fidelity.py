"""Fidelity verdicts on real answers: echoes of the embedded model, template text, mixed-language answers
written by the team and correct answers in several scripts (tests/assets/fidelity.jsonl)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from babeltune.evaluate.fidelity import ECHO_SHARE, echo_share, verdicts
from babeltune.langid import LangIdArgs

ASSETS = Path(__file__).resolve().parents[2] / "assets"


CASES = [json.loads(line) for line in (ASSETS / "fidelity.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_labelled_answer_gets_its_verdict():
    found = verdicts(
        [c["answer"] for c in CASES], [c["prompt"] for c in CASES], [c["lang"] for c in CASES], LangIdArgs()
    )
    wrong = [
        (c["verdict"], v, c["answer"][:60])
        for c, (v, _) in zip(CASES, found, strict=True)
        if v != c["verdict"]
    ]
    assert wrong == []
    assert Counter(c["verdict"] for c in CASES) == {"echo": 11, "ok": 16, "mixed": 8, "template": 3,
                                                    "wrong-language": 1, "empty": 1}  # fmt: skip
    assert {c["lang"] for c in CASES if c["verdict"] == "echo"} >= {"no", "bn", "de", "ru", "zh", "es"}


def test_the_echo_threshold_separates_real_echoes_from_real_answers():
    shares = {
        v: [echo_share(c["answer"], c["prompt"]) for c in CASES if c["verdict"] == v] for v in ("echo", "ok")
    }
    assert min(shares["echo"]) >= ECHO_SHARE > max(shares["ok"])


def test_every_team_written_mixed_answer_is_mixed():
    items = [(p.stem, row["text"]) for p in sorted((ASSETS / "langid").glob("*.jsonl"))
             for row in map(json.loads, p.read_text(encoding="utf-8").splitlines()) if row["kind"] == "mixed"]  # fmt: skip
    found = verdicts([t for _, t in items], [""] * len(items), [lang for lang, _ in items], LangIdArgs())
    assert len(items) == 60 and [v for v, _ in found] == ["mixed"] * 60


def test_an_answer_cut_to_nothing_by_its_template_header_is_template():
    found = verdicts(["", ""], ["Dime un color.", "Dime un color."], ["es", "es"], LangIdArgs(),
                     raws=["### Response:\nRojo.", "   "])  # fmt: skip
    assert [v for v, _ in found] == ["template", "empty"]


@pytest.mark.parametrize("text", ["中文回答", "Это ответ", "ñandú"])
def test_a_token_limit_never_leaves_half_a_character(tiny_model, text):
    from babeltune.inference.hf import decode_answer
    from babeltune.models import load_tokenizer

    tok = load_tokenizer(tiny_model)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    halves = [tok.decode(ids[:n]) for n in range(1, len(ids) + 1)]
    assert any(h.endswith("\ufffd") for h in halves)  # the byte-level tokenizer does cut characters
    assert not any(decode_answer(tok, ids[:n]).endswith("\ufffd") for n in range(1, len(ids) + 1))


def test_stop_strings_are_cut_wherever_they_occur():
    from babeltune.inference.decoding import cut_at_stop

    assert cut_at_stop("### Response: more", ["\n### "]) == ""
    assert cut_at_stop("Rojo.\n### Instruction: x", ["\n### "]) == "Rojo."
    assert cut_at_stop("  ### Response:", ["\n### "]) == ""
