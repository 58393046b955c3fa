"""Mix stage: compose training mixtures under a fixed budget.

C, the budget unit, is the size of one monolingual training set, in examples or in tokens. The paper's
four regimes:

| regime                   | mixtures         | size per mixture                 | cost   |
|--------------------------|------------------|----------------------------------|--------|
| monolingual              | one per language | C                                | N x C  |
| multilingual             | 1                | C from every language, shuffled  | N x C  |
| english-only             | 1                | C of English                     | C      |
| multilingual-downsampled | 1                | C sampled from the pooled data   | C      |

How the downsampled mixture is drawn is a sampling strategy: ``uniform`` (the paper: a uniform sample
of the pool, so one source item may recur in several languages), ``stratified`` (an equal share per
language), ``parallel-disjoint`` (each source item in one language only: no translated duplicates),
``temperature`` (language shares proportional to size**alpha) and ``ratios`` (explicit shares). A regime
may name one: ``multilingual-downsampled:stratified``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from babeltune.io import read_json, read_jsonl, write_json, write_jsonl
from babeltune.records import Example
from babeltune.registry import BabeltuneError, Registry
from babeltune.settings import setting
from babeltune.tasks import Outcome, Output, Task

Sizer = Callable[[Example], int]  # examples -> 1 each, or tokens -> token count
MIXTURE = "mixture.jsonl"
MANIFEST = "manifest.json"


@dataclass
class MixArgs:
    regimes: list[str] = setting(
        ["monolingual", "multilingual", "english-only", "multilingual-downsampled"],
        "training regimes (the paper's four); each yields one or more mixtures",
        nonempty=True,
        distinct=True,
    )
    monolingual_languages: list[str] | None = setting(
        None, "languages that get a monolingual run (default: all)"
    )
    budget: int | None = setting(
        None, "size of one monolingual run, the budget unit C (default: smallest language)", ge=1
    )
    budget_unit: Literal["examples", "tokens"] = setting("examples", "what `budget` counts")
    tokenizer: str | None = setting(
        None, "tokenizer that counts tokens (default: the first model, if local or built in)"
    )
    strategy: str = setting(
        "uniform", "how multilingual-downsampled draws C from the pool (or name it: regime:strategy)"
    )
    alpha: float = setting(
        0.3, "temperature strategy: language share proportional to size**alpha", ge=0, le=10
    )
    ratios: dict[str, float] = setting(
        {}, "ratios strategy: share per language, e.g. {en: 0.5, de: 0.25, fr: 0.25}"
    )
    normalise_ratios: bool = setting(
        False, "ratios strategy: scale shares that do not add up to 1 (and give unlisted languages 0) "
        "instead of refusing them")  # fmt: skip
    share: dict[str, float] = setting(
        {}, "fixed shares of the downsampled multilingual mixture, e.g. {en: 0.5}: those languages get that part "
        "of C, the other languages split the rest equally (sweep it for the 'pinch' question: how much English)")  # fmt: skip
    seed: int = setting(0, "seed for shuffling and downsampling; same seed, same mixture byte for byte", ge=0)

    def check(self, where: str, languages: list[str]) -> None:
        for i, regime in enumerate(self.regimes):
            try:
                parse_regime(regime, self.strategy)
            except BabeltuneError as err:
                raise BabeltuneError(f"{where}.regimes[{i}]: {err}") from None
        for code in self.monolingual_languages or []:
            if code not in languages:
                raise BabeltuneError(f"{where}.monolingual_languages: {code!r} is not in data.languages")
        check_share(self.share, languages, f"{where}.share")
        specs = mixture_specs(self, languages)  # e.g. english-only without English
        if any(spec.strategy == "ratios" for spec in specs):
            check_ratios(self.ratios, languages, self.normalise_ratios, f"{where}.ratios")

    def counting_tokenizer(self, first_model: str) -> str | None:
        """The tokenizer that counts tokens: ``tokenizer``, else the first model when it needs no download."""
        if self.tokenizer:
            return self.tokenizer
        return first_model if first_model.startswith("builtin:") or Path(first_model).is_dir() else None


@dataclass
class MixJob:
    mix: MixArgs
    languages: list[str]
    tokenizer: str | None  # counts tokens for the manifests (and the budget, in tokens)

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Outcome:
        return run(self.mix, inputs["examples"], self.languages, out_dir, self.tokenizer)

    def locate(self, folder: Path, part: str) -> Path:
        return folder / part / MIXTURE


def task(cfg: MixArgs, languages: list[str], examples: Output, tokenizer: str | None) -> Task:
    """One task writes every mixture; each is an output part whose content key is its file's hash, so a
    mixture that comes out the same (another regime added, say) leaves its training runs done."""
    job = MixJob(cfg, languages, tokenizer)
    return Task("mix", "mixtures", job, {"examples": examples})


def manifest_file(mixture: Path) -> Path:
    """The manifest written beside a ``mixture.jsonl``."""
    return mixture.parent / MANIFEST


@dataclass(frozen=True)
class Mixture:
    name: str  # e.g. "mono-es", used in run names and reports
    regime: str
    languages: tuple[str, ...]  # languages the mixture was drawn from
    examples: tuple[Example, ...]
    strategy: str = "uniform"  # how a downsampled mixture drew C from the pool


class Budget(int):
    """C, in the budget unit, with why it is what it is (a manifest and the plan both say it)."""

    reason: str = ""

    def __new__(cls, value: int, reason: str) -> Budget:
        budget = super().__new__(cls, value)
        budget.reason = reason
        return budget


@dataclass
class Pool:
    by_lang: dict[str, list[Example]]  # every example of each training language, in file order
    budget: Budget  # C, in the budget unit
    size: Sizer
    seed: int

    def rng(self, name: str) -> random.Random:
        # A string seed makes each mixture independent of which other mixtures exist in the grid.
        return random.Random(f"{self.seed}:{name}")

    def shuffled(self, examples: list[Example], name: str) -> list[Example]:
        rows = list(examples)
        self.rng(name).shuffle(rows)
        return rows

    def take(self, examples: list[Example], budget: int) -> list[Example]:
        """The longest prefix that fits the budget."""
        out, used = [], 0
        for ex in examples:
            if used + self.size(ex) > budget:
                break
            out.append(ex)
            used += self.size(ex)
        return out

    def monolingual(self, lang: str) -> list[Example]:
        """One language's C, in file order: the same items for every regime that uses this language."""
        return self.take(self.by_lang[lang], self.budget)


# --- sampling strategies: how C is drawn from the multilingual pool -----------------------------------


def check_share(share: dict[str, float], languages: list[str], where: str) -> None:
    """
    >>> check_share({"en": 0.5}, ["en", "es"], "mix.share"); check_share({"en": 0.6, "es": 0.6}, ["en", "es"], "mix.share")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: mix.share: the shares add up to 1.2; at most 1
    """
    for lang, value in share.items():
        if lang not in languages:
            raise BabeltuneError(f"{where}: {lang!r} is not in data.languages")
        if not 0 <= value <= 1:
            raise BabeltuneError(f"{where}.{lang}: a share from 0 to 1, got {value}")
    total = sum(share.values())
    if total > 1 + 1e-9:
        raise BabeltuneError(f"{where}: the shares add up to {total:g}; at most 1")
    if share and total < 1 - 1e-9 and set(share) >= set(languages):
        raise BabeltuneError(f"{where}: the shares add up to {total:g} and no other language takes the rest")


def apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Whole quotas in proportion to ``weights`` that add up to ``total`` exactly (largest remainders).

    >>> apportion(16, {"en": 0.5, "es": 0.25, "de": 0.25}), apportion(10, {"en": 1, "es": 1, "de": 1})
    ({'en': 8, 'es': 4, 'de': 4}, {'en': 4, 'es': 3, 'de': 3})
    """
    weight = sum(weights.values())
    exact = {lang: total * w / weight for lang, w in weights.items()}
    out = {lang: int(x) for lang, x in exact.items()}
    for lang in sorted(exact, key=lambda k: out[k] - exact[k])[: total - sum(out.values())]:
        out[lang] += 1
    return out


def fixed_shares(pool: Pool, cfg: MixArgs, name: str) -> list[Example]:
    """``mix.share``'s languages get their part of C; the others split the rest equally."""
    rest = [lang for lang in pool.by_lang if lang not in cfg.share]
    left = max(0.0, 1 - sum(cfg.share.values()))
    weights = {lang: v for lang, v in cfg.share.items() if v > 0} | {
        lang: left / len(rest) for lang in rest if left > 0
    }
    return _by_quota(pool, apportion(int(pool.budget), weights), name)


Strategy = Callable[[Pool, MixArgs, str], list[Example]]
STRATEGIES: Registry[Strategy] = Registry("sampling strategy")


def _quotas(pool: Pool, weights: dict[str, float]) -> dict[str, int]:
    """Each language's part of C, in whole units that add up to C exactly (flooring each drew 14 of C = 16)."""
    if sum(weights.values()) <= 0:
        raise BabeltuneError("mix.ratios: the shares add up to 0; give at least one language a share above 0")
    return apportion(int(pool.budget), weights)


def _by_quota(pool: Pool, quotas: dict[str, int], name: str) -> list[Example]:
    picked = []
    for lang, quota in quotas.items():
        picked += pool.take(pool.shuffled(pool.by_lang[lang], f"{name}:{lang}"), quota)
    return pool.shuffled(picked, name)


@STRATEGIES.register("uniform")
def uniform(pool: Pool, cfg: MixArgs, name: str) -> list[Example]:
    merged = [ex for lang in pool.by_lang for ex in pool.by_lang[lang]]
    return pool.take(pool.shuffled(merged, name), pool.budget)


@STRATEGIES.register("stratified")
def stratified(pool: Pool, cfg: MixArgs, name: str) -> list[Example]:
    return _by_quota(pool, _quotas(pool, dict.fromkeys(pool.by_lang, 1.0)), name)


@STRATEGIES.register("temperature")
def temperature(pool: Pool, cfg: MixArgs, name: str) -> list[Example]:
    sizes = {lang: sum(pool.size(e) for e in rows) for lang, rows in pool.by_lang.items()}
    return _by_quota(pool, _quotas(pool, {lang: n**cfg.alpha for lang, n in sizes.items()}), name)


def check_ratios(ratios: dict[str, float], languages: list[str], normalise: bool, where: str) -> None:
    """Every language of the data has a share, and the shares add up to 1 (to the third decimal), unless
    ``mix.normalise_ratios`` says to scale them: a forgotten language or a typo must not change the budget
    silently.

    >>> check_ratios({"en": 0.5, "es": 0.5}, ["en", "es"], False, "mix.ratios")
    >>> check_ratios({"en": 0.5, "es": 0.5, "ru": 0.5}, ["en", "es", "ru"], False, "mix.ratios")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: mix.ratios: the shares add up to 1.5, not 1 (mix.normalise_ratios: true scales them)
    """
    unknown = sorted(set(ratios) - set(languages))
    for lang, value in ratios.items():
        if value < 0:
            raise BabeltuneError(f"{where}: {lang}: {value:g} is negative; a share is 0 or more")
    if not ratios or unknown:
        raise BabeltuneError(
            f"{where}: give a share for each language of data.languages (not in it: {unknown})"
        )
    if normalise:
        return
    missing = [lang for lang in languages if lang not in ratios]
    if missing:
        raise BabeltuneError(f"{where}: no share for {', '.join(missing)} (give 0 to leave a language out, or "
                             "mix.normalise_ratios: true gives unlisted languages 0)")  # fmt: skip
    total = sum(ratios.values())
    if abs(total - 1) > 1e-3:
        raise BabeltuneError(
            f"{where}: the shares add up to {total:g}, not 1 (mix.normalise_ratios: true scales them)"
        )


@STRATEGIES.register("ratios")
def ratios(pool: Pool, cfg: MixArgs, name: str) -> list[Example]:
    check_ratios(cfg.ratios, list(pool.by_lang), cfg.normalise_ratios, "mix.ratios")
    return _by_quota(pool, _quotas(pool, {lang: cfg.ratios.get(lang, 0.0) for lang in pool.by_lang}), name)


@STRATEGIES.register("parallel-disjoint")
def parallel_disjoint(pool: Pool, cfg: MixArgs, name: str) -> list[Example]:
    """Each source item appears in one language only, languages taking turns."""
    versions: dict[str, dict[str, Example]] = defaultdict(dict)
    for lang, rows in pool.by_lang.items():
        for ex in rows:
            versions[ex.source_id][lang] = ex
    langs = list(pool.by_lang)
    picked = []
    for i, sid in enumerate(pool.shuffled(sorted(versions), name)):
        options = [
            versions[sid][lang]
            for lang in langs[i % len(langs) :] + langs[: i % len(langs)]
            if lang in versions[sid]
        ]
        picked.append(options[0])
    return pool.take(picked, pool.budget)


# --- regimes: which mixtures the grid trains on -------------------------------------------------------


@dataclass(frozen=True)
class MixtureSpec:
    """A mixture as the config alone defines it: planning needs no data."""

    name: str  # e.g. "mono-es", used in run names and reports
    regime: str
    languages: tuple[str, ...]  # languages the mixture is drawn from
    cost_in_C: float  # its size in units of the budget C
    strategy: str = "uniform"


@dataclass(frozen=True)
class Regime:
    specs: Callable[[list[str], MixArgs, str], list[MixtureSpec]]  # (languages, settings, strategy)
    draw: Callable[[Pool, MixtureSpec, MixArgs], list[Example]]


REGIMES: Registry[Regime] = Registry("regime")


def _monolingual_specs(langs: list[str], cfg: MixArgs, strategy: str) -> list[MixtureSpec]:
    return [
        MixtureSpec(f"mono-{lang}", "monolingual", (lang,), 1.0)
        for lang in cfg.monolingual_languages or langs
    ]


def _english_specs(langs: list[str], cfg: MixArgs, strategy: str) -> list[MixtureSpec]:
    if "en" not in langs:
        raise BabeltuneError("mix.regimes: 'english-only' needs 'en' in data.languages")
    return [MixtureSpec("en-only", "english-only", ("en",), 1.0)]


def _downsampled_name(strategy: str) -> str:
    return "multi-down" if strategy == "uniform" else f"multi-down-{strategy}"


REGIMES.register("monolingual")(
    Regime(
        _monolingual_specs,
        lambda pool, spec, cfg: pool.shuffled(pool.monolingual(spec.languages[0]), spec.name),
    )
)
REGIMES.register("multilingual")(
    Regime(
        lambda langs, cfg, strategy: [MixtureSpec("multi", "multilingual", tuple(langs), float(len(langs)))],
        lambda pool, spec, cfg: pool.shuffled(
            [ex for lang in pool.by_lang for ex in pool.monolingual(lang)], spec.name
        ),
    )
)
REGIMES.register("english-only")(
    Regime(_english_specs, lambda pool, spec, cfg: pool.shuffled(pool.monolingual("en"), spec.name))
)
REGIMES.register("multilingual-downsampled")(
    Regime(
        lambda langs, cfg, strategy: [
            MixtureSpec(_downsampled_name(strategy), "multilingual-downsampled", tuple(langs), 1.0, strategy)
        ],
        lambda pool, spec, cfg: (fixed_shares if cfg.share else STRATEGIES.get(spec.strategy))(
            pool, cfg, spec.name
        ),
    )
)


def parse_regime(spec: str, default_strategy: str) -> tuple[str, str]:
    """``name[:strategy]`` -> (regime, strategy), both checked against their registries.

    >>> parse_regime("multilingual-downsampled:stratified", "uniform")
    ('multilingual-downsampled', 'stratified')
    """
    regime, _, strategy = spec.partition(":")
    REGIMES.get(regime)
    STRATEGIES.get(strategy or default_strategy)
    return regime, strategy or default_strategy


def mixture_specs(cfg: MixArgs, languages: list[str]) -> list[MixtureSpec]:
    """Every mixture of the grid, from the settings alone (no data is read)."""
    specs = []
    for spec in cfg.regimes:
        regime, strategy = parse_regime(spec, cfg.strategy)
        specs += REGIMES.get(regime).specs(languages, cfg, strategy)
    return specs


def build_pool(examples: list[Example], languages: list[str], cfg: MixArgs, size: Sizer) -> Pool:
    """Group examples by language; C defaults to the smallest language's size in the budget unit."""
    by_lang: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_lang[ex.lang].append(ex)
    missing = [lang for lang in languages if not by_lang.get(lang)]
    if missing:
        raise BabeltuneError(f"data.languages: no training examples for {', '.join(missing)}")
    totals = {lang: sum(size(e) for e in by_lang[lang]) for lang in languages}
    smallest = min(languages, key=lambda lang: totals[lang])
    budget = Budget(cfg.budget, "set by mix.budget") if cfg.budget else Budget(
        totals[smallest], f"the smallest language: {smallest} has {totals[smallest]} {cfg.budget_unit}")  # fmt: skip
    short = [f"{lang} ({totals[lang]})" for lang in languages if totals[lang] < budget]
    if short:
        raise BabeltuneError(
            f"mix.budget: {budget} {cfg.budget_unit} per language, but {', '.join(short)} have fewer"
        )
    return Pool({lang: by_lang[lang] for lang in languages}, budget, size, cfg.seed)


class TokenSizer:
    """Tokens of an example's text under a model's tokenizer (what the budget in tokens counts), counted
    once per example; ``count_all`` counts many in batched calls (a fast tokenizer's batch runs in Rust, a
    call per example spends its time in Python)."""

    BATCH = 1024

    def __init__(self, tokenizer_name: str):
        from babeltune.models import load_tokenizer

        self.tok = load_tokenizer(tokenizer_name)
        self.counts: dict[str, int] = {}

    @staticmethod
    def text(ex: Example) -> str:
        return f"{ex.instruction}\n{ex.input}\n{ex.output}"

    def count_all(self, examples: list[Example]) -> None:
        todo = list({ex.id: ex for ex in examples if ex.id not in self.counts}.values())
        for i in range(0, len(todo), self.BATCH):
            chunk = todo[i : i + self.BATCH]
            ids = self.tok([self.text(ex) for ex in chunk], add_special_tokens=False)["input_ids"]
            self.counts.update({ex.id: len(row) for ex, row in zip(chunk, ids, strict=True)})

    def __call__(self, ex: Example) -> int:
        if ex.id not in self.counts:
            self.count_all([ex])
        return self.counts[ex.id]


def token_sizer(tokenizer_name: str) -> TokenSizer:
    return TokenSizer(tokenizer_name)


def mixtures(
    examples: list[Example], languages: list[str], cfg: MixArgs, tokens: Sizer | None = None
) -> tuple[list[Mixture], int]:
    if cfg.budget_unit == "tokens" and tokens is None:
        raise BabeltuneError("mix.budget_unit: 'tokens' needs a tokenizer (mix.tokenizer or the first model)")
    if isinstance(tokens, TokenSizer):
        tokens.count_all(examples)
    pool = build_pool(examples, languages, cfg, tokens if cfg.budget_unit == "tokens" else (lambda ex: 1))
    out = [
        Mixture(spec.name, spec.regime, spec.languages, tuple(REGIMES.get(spec.regime).draw(pool, spec, cfg)),
                spec.strategy)
        for spec in mixture_specs(cfg, languages)
    ]  # fmt: skip
    return out, pool.budget


def manifest(mix: Mixture, budget: int, cfg: MixArgs, tokens: Sizer | None) -> dict:
    counts = Counter(ex.lang for ex in mix.examples)
    token_counts: Counter[str] = Counter()
    for ex in mix.examples:
        token_counts[ex.lang] += tokens(ex) if tokens else 0
    size = len(mix.examples) if cfg.budget_unit == "examples" else sum(token_counts.values())
    return {
        "name": mix.name,
        "regime": mix.regime,
        "languages": list(mix.languages),
        "examples": len(mix.examples),
        "per_language": dict(sorted(counts.items())),
        "tokens": sum(token_counts.values()) if tokens else None,
        "tokens_per_language": dict(sorted(token_counts.items())) if tokens else None,
        "budget_unit": cfg.budget_unit,
        "budget_C": int(budget),
        "budget_reason": getattr(budget, "reason", ""),
        "cost_in_C": round(size / budget, 3),
        "seed": cfg.seed,
        "share": dict(cfg.share) if mix.regime == "multilingual-downsampled" and cfg.share else None,
        "strategy": mix.strategy if mix.regime == "multilingual-downsampled" and not cfg.share else None,
        "ratios": dict(cfg.ratios) if mix.strategy == "ratios" and not cfg.share else None,
        "distinct_source_items": len({ex.source_id for ex in mix.examples}),
    }


def translation_upstream(examples_path: Path) -> dict:
    """What the report must know of the translation these examples came from, carried on in each manifest:
    its warnings (a language few of whose translations passed the filters) and its quality (chrF and BLEU per
    language against human-written versions, where there are some). Human-written data has neither."""
    report, quality = (examples_path.parent / name for name in ("translate_report.json", "mt_quality.json"))
    return {
        "translation_warnings": read_json(report).get("warnings", []) if report.is_file() else [],
        "translation_quality": read_json(quality) if quality.is_file() else {},
    }


def run(
    cfg: MixArgs, examples_path: Path, languages: list[str], out_dir: Path, tokenizer: str | None = None
) -> Outcome:
    """Write ``<mixture>/mixture.jsonl`` and ``<mixture>/manifest.json`` for every mixture of the grid."""
    examples = [Example.from_dict(r) for r in read_jsonl(examples_path)]
    tokens = token_sizer(tokenizer) if tokenizer else None
    mixes, budget = mixtures(examples, languages, cfg, tokens)
    upstream = translation_upstream(examples_path)
    for mix in mixes:
        write_jsonl(out_dir / mix.name / MIXTURE, (ex.to_dict() for ex in mix.examples))
        write_json(out_dir / mix.name / MANIFEST, manifest(mix, budget, cfg, tokens) | upstream)
    return Outcome(parts=[m.name for m in mixes])
