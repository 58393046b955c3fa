"""Aggregation: per-response scores -> one row per (run, language)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from statistics import mean

from babeltune.report.stats import bootstrap_ci, paired_bootstrap_p


@dataclass
class Cell:
    run: str
    lang: str
    seen: bool  # the language was in the training data
    n: int
    consistency: float  # share of answers identified as the prompt's language
    judged: int
    unparsable: int
    score_sum: float | None  # the paper's number: sum of judge x match over judged prompts
    score_mean: float | None
    judge_mean: float | None  # before the language check
    robustness: float | None  # mean judge score before minus after the language check
    chrf: float | None
    consistency_ci: tuple[float, float] | None = None  # bootstrap 95 % over prompts
    score_ci: tuple[float, float] | None = None


def _mean(values: list[float]) -> float | None:
    return round(mean(values), 3) if values else None


def cell(run: str, lang: str, seen: bool, rows: list[dict]) -> Cell:
    """Aggregate the scores of one run in one language.

    >>> rows = [{"lang_match": True, "judge_score": 3, "judge_raw": "[[3]]", "final_score": 3, "chrf": 40.0},
    ...         {"lang_match": False, "judge_score": 2, "judge_raw": "[[2]]", "final_score": 0, "chrf": 20.0}]
    >>> c = cell("r", "es", True, rows)
    >>> c.consistency, c.score_sum, c.judge_mean, c.robustness, c.chrf
    (0.5, 3, 2.5, 1.0, 30.0)
    """
    judged = [r for r in rows if r["judge_raw"] is not None]
    scored = [r for r in judged if r["judge_score"] is not None]
    finals = [r["final_score"] for r in scored]
    befores = [r["judge_score"] for r in scored]
    chrfs = [r["chrf"] for r in rows if r["chrf"] is not None]
    return Cell(
        run=run,
        lang=lang,
        seen=seen,
        n=len(rows),
        consistency=round(sum(r["lang_match"] for r in rows) / len(rows), 3),
        judged=len(judged),
        unparsable=len(judged) - len(scored),
        score_sum=sum(finals) if scored else None,
        score_mean=_mean(finals),
        judge_mean=_mean(befores),
        robustness=round(mean(befores) - mean(finals), 3) if scored else None,
        chrf=_mean(chrfs),
        consistency_ci=bootstrap_ci([float(r["lang_match"]) for r in rows]),
        score_ci=bootstrap_ci([float(f) for f in finals]),
    )


def cells(scores: dict[str, list[dict]], seen_langs: set[str], lang_order: list[str] = ()) -> list[Cell]:
    """One cell per (run, language), in run order, then in ``lang_order`` (other languages last)."""
    rank = {lang: i for i, lang in enumerate(lang_order)}
    out = []
    for run, rows in scores.items():
        by_lang: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            by_lang[r["lang"]].append(r)
        ordered = sorted(by_lang, key=lambda lang: rank.get(lang, len(rank)))
        out += [cell(run, lang, lang in seen_langs, by_lang[lang]) for lang in ordered]
    return out


def paired_tests(
    scores: dict[str, list[dict]], lang_order: list[str] = (), alpha: float = 0.05
) -> list[dict]:
    """Every pair of runs in every language, on the prompts both answered: the paper's score where both
    were judged, else language consistency; p from a paired bootstrap over prompts."""
    by_run_lang: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for run, rows in scores.items():
        for r in rows:
            by_run_lang[run, r["lang"]][r["source_id"]] = r
    out = []
    rank = {lang: i for i, lang in enumerate(lang_order)}
    langs = sorted(dict.fromkeys(lang for _, lang in by_run_lang), key=lambda lang: rank.get(lang, len(rank)))
    for lang in langs:
        for a, b in combinations(list(scores), 2):
            ra, rb = by_run_lang.get((a, lang), {}), by_run_lang.get((b, lang), {})
            common = sorted(set(ra) & set(rb))
            judged = [
                k for k in common if ra[k]["final_score"] is not None and rb[k]["final_score"] is not None
            ]
            metric, keys = ("score", judged) if len(judged) >= 2 else ("consistency", common)
            value = (
                (lambda r: float(r["final_score"]))
                if metric == "score"
                else (lambda r: float(r["lang_match"]))
            )
            xa, xb = [value(ra[k]) for k in keys], [value(rb[k]) for k in keys]
            p = paired_bootstrap_p(xa, xb)
            out.append({
                "lang": lang, "run_a": a, "run_b": b, "metric": metric, "prompts": len(keys),
                "mean_a": _mean(xa), "mean_b": _mean(xb), "difference": round(mean(xa) - mean(xb), 3) if keys else None,
                "p": p, "significant": p is not None and p < alpha,
            })  # fmt: skip
    return out
