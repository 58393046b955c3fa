"""The mixer: the paper's regimes under a fixed budget, quotas, English shares, tokens counted."""

from collections import Counter
from pathlib import Path

import pytest

from babeltune import mix
from babeltune.config import MixArgs
from babeltune.io import read_json
from babeltune.registry import BabeltuneError
from helpers.mix import LANGS


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
    a, b, c = (tmp_path / name for name in "abc")
    for seed, out in ((3, a), (3, b), (4, c)):
        assert "multi-down" in mix.run(MixArgs(seed=seed), src, LANGS, out).parts
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


def test_sampling_strategies(examples):
    cfg = MixArgs(
        regimes=[f"multilingual-downsampled:{s}" for s in ("stratified", "parallel-disjoint", "ratios")],
        budget=90,
        ratios={"en": 2, "de": 1},
        normalise_ratios=True,  # 2:1, the other languages 0
    )
    mixes = {m.name: m for m in mix.mixtures(examples, LANGS, cfg)[0]}
    strat = Counter(e.lang for e in mixes["multi-down-stratified"].examples)
    assert strat == dict.fromkeys(LANGS, 10)  # an equal share per language
    disjoint = mixes["multi-down-parallel-disjoint"].examples
    assert len(disjoint) == 90 and len({e.source_id for e in disjoint}) == 90  # no translated duplicates
    assert max(Counter(e.lang for e in disjoint).values()) == 10
    assert Counter(e.lang for e in mixes["multi-down-ratios"].examples) == {"en": 60, "de": 30}


def test_temperature_flattens_unequal_languages(examples):
    uneven = [
        e for e in examples if e.lang == "en" or int(e.source_id.split("-")[1]) <= 20
    ]  # en 100, others 20
    cfg = MixArgs(regimes=["multilingual-downsampled:temperature"], budget=20, alpha=0.0)
    (flat,), _ = mix.mixtures(uneven, ["en", "de", "fr", "es"], cfg)
    assert Counter(e.lang for e in flat.examples) == {"en": 5, "de": 5, "fr": 5, "es": 5}
    cfg = MixArgs(regimes=["multilingual-downsampled:temperature"], budget=20, alpha=1.0)
    (proportional,), _ = mix.mixtures(uneven, ["en", "de", "fr", "es"], cfg)
    counts = Counter(e.lang for e in proportional.examples)  # 100 / 160 of 20 = 12.5: quotas add up to C
    assert counts["en"] in (12, 13) and sum(counts.values()) == 20  # (flooring every share drew 18)


def test_token_budgets_count_tokens_and_cost(examples):
    words = lambda ex: len(f"{ex.instruction} {ex.input} {ex.output}") // 4  # noqa: E731 - a stand-in tokenizer
    cfg = MixArgs(regimes=["monolingual", "multilingual-downsampled"], budget_unit="tokens", budget=2000)
    mixes, budget = mix.mixtures(examples, LANGS, cfg, tokens=words)
    assert budget == 2000
    for m in mixes:
        used = sum(words(e) for e in m.examples)
        assert 2000 - 200 < used <= 2000  # filled up to the token budget
        man = mix.manifest(m, budget, cfg, words)
        assert man["tokens"] == used and man["cost_in_C"] == round(used / 2000, 3)
        assert sum(man["tokens_per_language"].values()) == used
    with pytest.raises(BabeltuneError, match="needs a tokenizer"):
        mix.mixtures(examples, LANGS, cfg)


def test_unknown_strategy_lists_choices(examples):
    with pytest.raises(
        BabeltuneError, match="unknown sampling strategy 'stratifed'; did you mean 'stratified'"
    ):
        mix.mixtures(examples, LANGS, MixArgs(regimes=["multilingual-downsampled:stratifed"]))


@pytest.mark.parametrize("english", [1.0, 0.9, 0.5, 0.0])
def test_a_fixed_english_share_at_the_budget(examples, english):
    """The 'pinch' question: the downsampled mixture keeps size C, English gets exactly its share, the other
    languages split the rest as evenly as whole examples allow."""
    cfg = MixArgs(regimes=["multilingual-downsampled"], share={"en": english})
    (down,), budget = mix.mixtures(examples, LANGS, cfg)
    counts = Counter(e.lang for e in down.examples)
    assert len(down.examples) == budget == 100 and counts["en"] == round(100 * english)
    others = [counts[lang] for lang in LANGS[1:]]
    assert sum(others) == 100 - counts["en"] and max(others) - min(others) <= 1
    assert mix.manifest(down, budget, cfg, None)["share"] == {"en": english}


def test_shares_that_cannot_be_met_are_refused():
    with pytest.raises(BabeltuneError, match="mix.share: the shares add up to 1.5; at most 1"):
        MixArgs(share={"en": 0.5, "es": 1.0}).check("mix", ["en", "es"])
    with pytest.raises(BabeltuneError, match="mix.share: 'xx' is not in data.languages"):
        MixArgs(share={"xx": 0.5}).check("mix", ["en", "es"])


def test_quotas_add_up_to_the_budget_exactly(examples):
    """C = 16 over three languages with shares 1:1:1 drew 15 (5 each) when every share was floored."""
    for strategy in ("stratified", "temperature", "ratios"):
        cfg = MixArgs(regimes=[f"multilingual-downsampled:{strategy}"], budget=16,
                      ratios={"en": 1 / 3, "de": 1 / 3, "fr": 1 / 3})  # fmt: skip
        (down,), budget = mix.mixtures(examples, ["en", "de", "fr"], cfg)
        assert len(down.examples) == budget == 16, strategy
