"""Aggregation: per-response scores -> one row per (run, language), and paired tests between runs."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from statistics import mean

from babeltune.evaluate.fidelity import VERDICTS
from babeltune.records import Score
from babeltune.report.columns import METRICS, average
from babeltune.report.contrasts import Contrast
from babeltune.report.stats import MIN_PAIRED, bootstrap_ci, holm, paired_permutation_p

LARGE_GRID = 16  # runs; above this a bar or a row per run is unreadable: plots show mixtures, tables fold


@dataclass
class Cell:
    """One run in one language: its answers' count, every metric of ``columns.METRICS`` (read as attributes:
    ``cell.consistency``), the intervals of those that have one, the verdicts' shares."""

    run: str
    lang: str
    seen: bool  # the language was in the training data
    n: int  # answers
    values: dict[str, object] = field(default_factory=dict)  # metric key (or its interval's) -> value
    seed_range: tuple[float, float] | None = None  # fidelity's lowest and highest over the training seeds
    verdicts: dict[str, float] = field(default_factory=dict)  # share of each verdict

    def __getattr__(self, key: str) -> object:
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"a cell has no {key!r}")

    def row(self) -> dict:
        """Its numbers flat, in the columns' order (the verdicts aside)."""
        return (
            {"lang": self.lang, "seen": self.seen, "n": self.n}
            | self.values
            | {"seed_range": self.seed_range}
        )


def cell(run: str, lang: str, seen: bool, rows: list[Score]) -> Cell:
    """Aggregate the scores of one run in one language: each metric's per-answer values, aggregated.

    >>> from babeltune.records import Score
    >>> def s(verdict, judge, final, chrf):
    ...     return Score("p:es", "p", "es", "r", "", "es", verdict, verdict == "ok", judge,
    ...                  None if judge is None else f"[[{judge}]]", final, chrf)
    >>> rows = [s("ok", 3, 3, 40.0), s("wrong-language", 2, 0, 20.0), s("echo", None, 0, 10.0)]
    >>> c = cell("r", "es", True, rows)
    >>> c.consistency, c.score_sum, c.score_n, c.judge_mean, c.robustness, c.verdicts["echo"]
    (0.333, 3, 3, 2.5, 1.0, 0.333)
    """
    values: dict[str, object] = {}
    for metric in METRICS:
        found = [v for v in map(metric.per_row, rows) if v is not None]
        values[metric.key] = metric.aggregate(found)
        if metric.ci:
            values[metric.ci] = bootstrap_ci([float(v) for v in found])
    counts = Counter(r.verdict for r in rows)
    return Cell(
        run, lang, seen, len(rows), values, verdicts={v: round(counts[v] / len(rows), 3) for v in VERDICTS}
    )


def cells(scores: dict[str, list[Score]], seen_langs: set[str], lang_order: list[str] = ()) -> list[Cell]:
    """One cell per (run, language), in run order, then in ``lang_order`` (other languages last)."""
    rank = {lang: i for i, lang in enumerate(lang_order)}
    out = []
    for run, rows in scores.items():
        by_lang: dict[str, list[Score]] = defaultdict(list)
        for r in rows:
            by_lang[r.lang].append(r)
        ordered = sorted(by_lang, key=lambda lang: rank.get(lang, len(rank)))
        out += [cell(run, lang, lang in seen_langs, by_lang[lang]) for lang in ordered]
    return out


def add_seed_ranges(table: list[Cell], point_of: dict[str, str]) -> None:
    """Give each cell the range of fidelity over the training seeds of its grid point (``point_of``: run ->
    its grid point without the seed; runs of one seed are not in it), beside the interval over prompts.

    >>> a, b = (Cell(r, "es", True, 4, {"consistency": f}) for r, f in (("s0", .5), ("s1", .75)))
    >>> add_seed_ranges([a, b], {"s0": "p", "s1": "p"}); a.seed_range
    (0.5, 0.75)
    """
    groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for c in table:
        if c.run in point_of:
            groups[point_of[c.run], c.lang].append(c)
    for group in groups.values():
        values = [c.consistency for c in group if c.consistency is not None]
        if len(group) > 1 and values:
            for c in group:
                c.seed_range = (min(values), max(values))


def paired_tests(
    scores: dict[str, list[Score]],
    contrasts: list[Contrast] | None = None,
    lang_order: list[str] = (),
    alpha: float = 0.05,
) -> list[dict]:
    """Each contrast (default: every pair of runs) in each of its languages, on the prompts both runs answered:
    the paper's score where both have one, else language consistency. p from an exact or permutation paired
    test, none under MIN_PAIRED shared prompts; Holm-adjusted across all the comparisons of the same metric,
    and only those that survive the adjustment are marked significant. Rows by language, then contrast."""
    by_run_lang: dict[tuple[str, str], dict[str, Score]] = defaultdict(dict)
    for run, rows in scores.items():
        for r in rows:
            by_run_lang[run, r.lang][r.source_id] = r
    if contrasts is None:
        contrasts = [Contrast(a, b, None) for a, b in combinations(list(scores), 2)]
    rank = {lang: i for i, lang in enumerate(lang_order)}
    langs = sorted(dict.fromkeys(lang for _, lang in by_run_lang), key=lambda lang: rank.get(lang, len(rank)))
    out = [
        paired_test(c.a, c.b, lang, by_run_lang.get((c.a, lang), {}), by_run_lang.get((c.b, lang), {}))
        for lang in langs
        for c in contrasts
        if c.languages is None or lang in c.languages
    ]
    for metric in ("score", "consistency"):
        family = [row for row in out if row["metric"] == metric]
        for row, adjusted in zip(family, holm([row["p"] for row in family]), strict=True):
            row["p_holm"] = adjusted
            row["significant"] = adjusted is not None and adjusted < alpha
    return out


def paired_test(a: str, b: str, lang: str, ra: dict[str, Score], rb: dict[str, Score]) -> dict:
    """Run a vs run b in one language, over the prompts (source ids) both answered."""
    common = sorted(ra.keys() & rb.keys())
    scored = [k for k in common if ra[k].final_score is not None and rb[k].final_score is not None]
    metric, keys = ("score", scored) if len(scored) >= MIN_PAIRED else ("consistency", common)
    value = (lambda r: float(r.final_score)) if metric == "score" else (lambda r: float(r.verdict == "ok"))
    xa, xb = [value(ra[k]) for k in keys], [value(rb[k]) for k in keys]
    return {
        "lang": lang, "run_a": a, "run_b": b, "metric": metric, "prompts": len(keys),
        "mean_a": average(xa), "mean_b": average(xb), "difference": round(mean(xa) - mean(xb), 3) if keys else None,
        "p": paired_permutation_p(xa, xb),
        "note": "" if len(keys) >= MIN_PAIRED else f"fewer than {MIN_PAIRED} shared prompts: not tested",
    }  # fmt: skip
