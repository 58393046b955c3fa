from collections import Counter
from pathlib import Path

import pytest

from babeltune import mix
from babeltune.config import DataArgs, MixArgs
from babeltune.data import stage as data_stage
from babeltune.io import read_json
from babeltune.registry import BabeltuneError

LANGS = ["en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh"]


@pytest.fixture(scope="module")
def examples():
    return data_stage.load_examples(DataArgs(languages=LANGS))


def test_paper_regimes_have_the_paper_budget(examples):
    mixes, budget = mix.mixtures(examples, LANGS, MixArgs())
    by_name = {m.name: m for m in mixes}
    assert budget == 100
    assert {f"mono-{lang}" for lang in LANGS} | {"multi", "en-only", "multi-down"} == set(by_name)
    for lang in LANGS:
        assert len(by_name[f"mono-{lang}"].examples) == budget
        assert {e.lang for e in by_name[f"mono-{lang}"].examples} == {lang}
    assert len(by_name["multi"].examples) == len(LANGS) * budget
    assert Counter(e.lang for e in by_name["multi"].examples) == {lang: budget for lang in LANGS}
    assert {e.lang for e in by_name["en-only"].examples} == {"en"}
    down = by_name["multi-down"].examples
    assert len(down) == len(by_name["mono-es"].examples)  # downsampled = one monolingual set
    assert len(set(e.id for e in down)) == len(down)  # a sample without replacement
    assert len(Counter(e.lang for e in down)) >= 7  # uniform from the pool: most languages appear


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path, examples):
    src = tmp_path / "examples.jsonl"
    from babeltune.io import write_jsonl

    write_jsonl(src, (e.to_dict() for e in examples))
    a = mix.run(MixArgs(seed=3), src, LANGS, tmp_path / "a")
    b = mix.run(MixArgs(seed=3), src, LANGS, tmp_path / "b")
    c = mix.run(MixArgs(seed=4), src, LANGS, tmp_path / "c")
    for name in ("multi-down", "multi", "mono-fi"):
        assert (a / name / "mixture.jsonl").read_bytes() == (b / name / "mixture.jsonl").read_bytes()
        assert (a / name / "mixture.jsonl").read_bytes() != (c / name / "mixture.jsonl").read_bytes()
    manifest = read_json(Path(a) / "multi-down" / "manifest.json")
    assert manifest["examples"] == 100 and manifest["cost_in_C"] == 1.0 and manifest["seed"] == 3
    assert sum(manifest["per_language"].values()) == 100
    assert read_json(Path(a) / "multi" / "manifest.json")["cost_in_C"] == 9.0


def test_budget_cuts_every_language_and_too_large_fails(examples):
    mixes, budget = mix.mixtures(examples, LANGS, MixArgs(regimes=["monolingual"], budget=10))
    assert budget == 10 and all(len(m.examples) == 10 for m in mixes)
    with pytest.raises(BabeltuneError, match="mix.budget: 500 examples per language"):
        mix.mixtures(examples, LANGS, MixArgs(budget=500))


def test_english_only_without_english_fails(examples):
    with pytest.raises(BabeltuneError, match="'english-only' needs 'en'"):
        mix.mixtures([e for e in examples if e.lang != "en"], ["es", "fr"], MixArgs(regimes=["english-only"]))
