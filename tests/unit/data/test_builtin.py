"""The team-written built-in data: size, parallelism, and that every item is in its own language."""

import pytest

from babeltune.config import LangIdArgs
from babeltune.data import loaders
from babeltune.langid import detect

TRAIN = ["en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh"]


TEST = TRAIN + ["bn", "no", "hi"]


# The only exceptions: inputs that are not prose, so no language can be identified in them. Every other
# field (all instructions, outputs, prose inputs, prompts and references) must be identified correctly.
NOT_PROSE_INPUTS = {
    "inst-019",  # "4.5 m × 3.2 m"
    "inst-043",  # "Speed: 30 m/s; time: 12 s"
    "inst-068",  # "12, 15, 9, 14, 10"
    "inst-090",  # "Price: 480 €, discount: 15%"
    "inst-100",  # a Python loop
}


def _exempt(item_id: str, field: str) -> bool:
    return field == "input" and item_id.split(":")[0] in NOT_PROSE_INPUTS


def _fields(kind: str):
    if kind == "instructions":
        for ex in loaders.builtin_examples(TRAIN):
            for field in ("instruction", "input", "output"):
                yield ex.id, ex.lang, field, getattr(ex, field)
    else:
        for p in loaders.builtin_test_prompts(TEST):
            yield p.id, p.lang, "prompt", p.prompt
            yield p.id, p.lang, "reference", p.reference


def test_instructions_are_parallel_and_large_enough():
    examples = loaders.builtin_examples(TRAIN)
    per_lang = {lang: [e for e in examples if e.lang == lang] for lang in TRAIN}
    assert all(len(v) >= 100 for v in per_lang.values())
    ids = [e.source_id for e in per_lang["en"]]
    assert len(set(ids)) == len(ids)
    for lang in TRAIN:
        assert [e.source_id for e in per_lang[lang]] == ids
    with_input = [e for e in per_lang["en"] if e.input]
    assert len(with_input) >= 20
    assert all(e.output.strip() and e.instruction.strip() for e in examples)


def test_test_prompts_cover_eleven_languages_with_references():
    prompts = loaders.builtin_test_prompts(TEST)
    for lang in TEST:
        mine = [p for p in prompts if p.lang == lang]
        assert len(mine) >= 24
        assert all(p.reference and p.prompt for p in mine)


@pytest.mark.parametrize("kind", ["instructions", "test_prompts"])
def test_bundled_language_id_recognises_every_item(kind):
    items = [(i, lang, f, t) for i, lang, f, t in _fields(kind) if t and not _exempt(i, f)]
    found = detect([t for *_, t in items], LangIdArgs(min_letters=1))
    wrong = [(i, f, d.lang) for (i, lang, f, _), d in zip(items, found, strict=True) if d.lang != lang]
    assert wrong == []
    assert all(
        sum(ch.isalpha() for ch in t) < 20 for i, _, f, t in _fields(kind) if _exempt(i, f)
    )  # few letters
