"""Mix stage: compose training mixtures under a fixed budget.

C, the budget unit, is the size of one monolingual training set. The paper's four regimes:

| regime                   | mixtures            | examples per mixture | cost   |
|--------------------------|---------------------|----------------------|--------|
| monolingual              | one per language    | C                    | N x C  |
| multilingual             | 1                   | N x C                | N x C  |
| english-only             | 1                   | C                    | C      |
| multilingual-downsampled | 1                   | C (uniform from pool)| C      |
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babeltune.config import MixArgs
from babeltune.data.schema import Example
from babeltune.io import read_jsonl, write_json, write_jsonl
from babeltune.registry import BabeltuneError, Registry


@dataclass(frozen=True)
class Mixture:
    name: str  # e.g. "mono-es", used in run names and reports
    regime: str
    languages: tuple[str, ...]  # languages the mixture was drawn from
    examples: tuple[Example, ...]


Pool = dict[str, list[Example]]  # language -> its first C examples, in file order
RegimeFn = Callable[[Pool, MixArgs, int], list[Mixture]]
REGIMES: Registry[RegimeFn] = Registry("regime")


def _shuffled(examples: list[Example], seed: int, name: str) -> tuple[Example, ...]:
    # A string seed makes each mixture's order independent of which other mixtures exist.
    rows = list(examples)
    random.Random(f"{seed}:{name}").shuffle(rows)
    return tuple(rows)


@REGIMES.register("monolingual")
def monolingual(pool: Pool, cfg: MixArgs, budget: int) -> list[Mixture]:
    langs = cfg.monolingual_languages or list(pool)
    return [
        Mixture(f"mono-{lang}", "monolingual", (lang,), _shuffled(pool[lang], cfg.seed, f"mono-{lang}"))
        for lang in langs
    ]


@REGIMES.register("multilingual")
def multilingual(pool: Pool, cfg: MixArgs, budget: int) -> list[Mixture]:
    merged = [ex for lang in pool for ex in pool[lang]]
    return [Mixture("multi", "multilingual", tuple(pool), _shuffled(merged, cfg.seed, "multi"))]


@REGIMES.register("english-only")
def english_only(pool: Pool, cfg: MixArgs, budget: int) -> list[Mixture]:
    if "en" not in pool:
        raise BabeltuneError("mix.regimes: 'english-only' needs 'en' in data.languages")
    return [Mixture("en-only", "english-only", ("en",), _shuffled(pool["en"], cfg.seed, "en-only"))]


@REGIMES.register("multilingual-downsampled")
def multilingual_downsampled(pool: Pool, cfg: MixArgs, budget: int) -> list[Mixture]:
    # The paper: a uniform sample of the pooled data, not stratified, so one source item may recur in
    # several languages and each language gets about C/N examples.
    merged = [ex for lang in pool for ex in pool[lang]]
    sample = random.Random(f"{cfg.seed}:multi-down").sample(merged, budget)
    return [Mixture("multi-down", "multilingual-downsampled", tuple(pool), tuple(sample))]


def build_pool(examples: list[Example], languages: list[str], budget: int | None) -> tuple[Pool, int]:
    """Group examples by language and cut every language to the budget C (default: the smallest language)."""
    by_lang: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_lang[ex.lang].append(ex)
    missing = [lang for lang in languages if not by_lang.get(lang)]
    if missing:
        raise BabeltuneError(f"data.languages: no training examples for {', '.join(missing)}")
    smallest = min(len(by_lang[lang]) for lang in languages)
    budget = budget or smallest
    if budget > smallest:
        short = [lang for lang in languages if len(by_lang[lang]) < budget]
        raise BabeltuneError(f"mix.budget: {budget} examples per language, but {', '.join(short)} have fewer")
    return {lang: by_lang[lang][:budget] for lang in languages}, budget


def mixtures(examples: list[Example], languages: list[str], cfg: MixArgs) -> tuple[list[Mixture], int]:
    pool, budget = build_pool(examples, languages, cfg.budget)
    out = [m for regime in cfg.regimes for m in REGIMES.get(regime)(pool, cfg, budget)]
    return out, budget


def manifest(mix: Mixture, budget: int, seed: int) -> dict:
    counts = Counter(ex.lang for ex in mix.examples)
    chars = Counter()
    for ex in mix.examples:
        chars[ex.lang] += len(ex.instruction) + len(ex.input) + len(ex.output)
    return {
        "name": mix.name,
        "regime": mix.regime,
        "languages": list(mix.languages),
        "examples": len(mix.examples),
        "per_language": dict(sorted(counts.items())),
        "characters_per_language": dict(sorted(chars.items())),
        "budget_unit_C": budget,
        "cost_in_C": round(len(mix.examples) / budget, 3),
        "seed": seed,
        "distinct_source_items": len({ex.source_id for ex in mix.examples}),
    }


def run(cfg: MixArgs, examples_path: Path, languages: list[str], out_dir: Path) -> Path:
    """Write ``<mixture>/mixture.jsonl`` and ``<mixture>/manifest.json`` for every mixture of the grid."""
    examples = [Example.from_dict(r) for r in read_jsonl(examples_path)]
    mixes, budget = mixtures(examples, languages, cfg)
    for mix in mixes:
        write_jsonl(out_dir / mix.name / "mixture.jsonl", (ex.to_dict() for ex in mix.examples))
        write_json(out_dir / mix.name / "manifest.json", manifest(mix, budget, cfg.seed))
    return out_dir
