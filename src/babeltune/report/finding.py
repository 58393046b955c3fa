"""The experiment's question answered from its own numbers: which regime answers in the prompt's language,
and (when a judge ran) which answers best?

Fidelity is the share of answers whose verdict is ``ok`` (a real answer, in the prompt's language); the score
is the paper's judge rating x (verdict ok). Both are pooled over the seen non-English test languages and over
the unseen ones. The paper's comparisons are paired over the (prompt, language) answers both runs gave, with
a bootstrap 95 % interval and a permutation p-value; a difference whose interval holds 0 is said to be not
significant.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from babeltune.records import Score
from babeltune.report.columns import per_answer
from babeltune.report.contrasts import DOWNSAMPLED, ENGLISH, MONO, MULTI, RunInfo, by_regime, neighbours
from babeltune.report.stats import MIN_PAIRED, bootstrap_ci, hierarchical_ci, paired_ci, paired_permutation_p

# What the finding measures per answer: fidelity always; the paper's score (judge x ok) when a judge ran.
METRICS = {"fidelity": per_answer("consistency"), "score": per_answer("score_mean")}  # the report's own


def _values(rows: list[Score], metric: str) -> dict[tuple[str, str], float]:
    value = METRICS[metric]
    return {(r.source_id, r.lang): v for r in rows if (v := value(r)) is not None}


def pooled(rows: list[Score], langs: set[str], metric: str = "fidelity") -> dict:
    """``metric``'s mean over the answers in ``langs``, with its bootstrap interval."""
    values = [v for (_, lang), v in _values(rows, metric).items() if lang in langs]
    return {"answers": len(values), metric: round(mean(values), 3) if values else None,
            "ci": bootstrap_ci(values)}  # fmt: skip


def compare(a: list[Score], b: list[Score], langs: set[str], metric: str = "fidelity") -> dict:
    """Paired difference in ``metric`` (a - b) over the answers both runs gave in ``langs``."""
    xa, xb = paired(a, b, langs, metric)
    head = {"metric": metric}
    if len(xa) < MIN_PAIRED:
        return head | {"answers": len(xa), f"{metric}_a": None, f"{metric}_b": None, "difference": None, "ci": None,
                       "p": None, "significant": False,
                       "verdict": f"not tested: fewer than {MIN_PAIRED} shared answers"}  # fmt: skip
    ci, p = paired_ci(xa, xb), paired_permutation_p(xa, xb)
    diff = round(mean(xa) - mean(xb), 3)
    # Both must agree: the exact test (p < 0.05) and the bootstrap interval (0 outside it).
    significant = p is not None and p < 0.05 and ci is not None and (ci[0] > 0 or ci[1] < 0)
    return head | {"answers": len(xa), f"{metric}_a": round(mean(xa), 3), f"{metric}_b": round(mean(xb), 3),
            "difference": diff, "ci": ci,
            "p": p, "significant": significant,
            "verdict": "significant" if significant else "not significant (p >= 0.05 or the 95 % interval holds 0)"}  # fmt: skip


def _by_seed(runs: list[RunInfo]) -> dict:
    return {r.seed: r for r in runs}


def comparison(
    scores: dict[str, list[Score]],
    pairs: list[tuple[RunInfo, RunInfo]],
    label: str,
    langs: set[str],
    metric: str = "fidelity",
) -> dict:
    """One of the paper's comparisons: one pair of runs, or the same pair trained with several seeds, judged
    across seeds (a seed that carries the difference alone does not make it significant)."""
    head = {"on": label, "languages": sorted(langs)}
    if len(pairs) == 1:
        ((a, b),) = pairs
        return {"a": a.name, "b": b.name} | head | compare(scores[a.name], scores[b.name], langs, metric)
    per_seed = [compare(scores[a.name], scores[b.name], langs, metric) for a, b in pairs]
    diffs = [
        [x - y for x, y in zip(*paired(scores[a.name], scores[b.name], langs, metric), strict=True)]
        for a, b in pairs
    ]
    ci = hierarchical_ci(diffs)
    significant = ci is not None and (ci[0] > 0 or ci[1] < 0)
    tested = [c for c in per_seed if c["difference"] is not None]
    return {"a": pairs[0][0].group + f"/{pairs[0][0].mixture} ({len(pairs)} seeds)",
            "b": pairs[0][1].group + f"/{pairs[0][1].mixture} ({len(pairs)} seeds)"} | head | {
        "metric": metric, "answers": sum(c["answers"] for c in per_seed), "seeds": len(pairs),
        f"{metric}_a": _mean_of(tested, f"{metric}_a"), f"{metric}_b": _mean_of(tested, f"{metric}_b"),
        "difference": _mean_of(tested, "difference"), "per_seed": [c["difference"] for c in per_seed],
        "ci": ci, "p": None, "significant": significant,
        "verdict": "significant across seeds" if significant else
                   "not significant across seeds (the 95 % interval over seeds and prompts holds 0)",
    }  # fmt: skip


def _mean_of(rows: list[dict], key: str) -> float | None:
    return round(mean(r[key] for r in rows), 3) if rows else None


def paired(
    a: list[Score], b: list[Score], langs: set[str], metric: str = "fidelity"
) -> tuple[list[float], list[float]]:
    """``metric`` (fidelity: 1 ok, 0 not) of the answers both runs gave in ``langs``, paired by (prompt,
    language)."""
    va, vb = _values(a, metric), _values(b, metric)
    keys = sorted(k for k in va.keys() & vb.keys() if k[1] in langs)
    return [va[k] for k in keys], [vb[k] for k in keys]


def finding(
    scores: dict[str, list[Score]], runs: list[RunInfo], seen: set[str], test_langs: list[str]
) -> dict:
    """Per-run fidelity on seen non-English and unseen languages, and the paper's comparisons."""
    seen_other = {lang for lang in test_langs if lang in seen and lang != "en"}
    unseen = {lang for lang in test_langs if lang not in seen}
    judged = any(s.final_score is not None for rows in scores.values() for s in rows)
    metrics = ["fidelity", "score"] if judged else ["fidelity"]
    per_run = [
        {"run": r.name, "regime": r.regime, "seen_non_english": pooled(scores[r.name], seen_other),
         "unseen": pooled(scores[r.name], unseen)}
        | ({"score": {"seen_non_english": pooled(scores[r.name], seen_other, "score"),
                      "unseen": pooled(scores[r.name], unseen, "score")}} if judged else {})
        for r in runs
    ]  # fmt: skip
    comparisons = []
    for regimes in by_regime(runs).values():
        downs = _by_seed(regimes[DOWNSAMPLED])
        if not downs:
            continue
        families = [
            (_by_seed(regimes[ENGLISH]), label, langs)
            for label, langs in (("seen non-English languages", seen_other), ("unseen languages", unseen))
        ]
        monos = {m.languages[0] for m in regimes[MONO] if m.languages and m.languages[0] in test_langs}
        families += [
            (
                _by_seed([m for m in regimes[MONO] if m.languages[:1] == (lang,)]),
                f"{lang}, the monolingual run's own language",
                {lang},
            )
            for lang in sorted(monos)
        ]
        families += [(_by_seed(regimes[MULTI]), "seen non-English languages", seen_other)]
        for others, label, langs in families:
            pairs = [(downs[s], others[s]) for s in downs if s in others]
            if langs and pairs:
                comparisons += [comparison(scores, pairs, label, langs, metric) for metric in metrics]
    return {"seen_non_english": sorted(seen_other), "unseen": sorted(unseen), "runs": per_run,
            "comparisons": comparisons,
            "along": along_settings(scores, runs, (("seen non-English languages", seen_other),
                                                   ("unseen languages", unseen)), metrics)}  # fmt: skip


def along_settings(
    scores: dict[str, list[Score]], runs: list[RunInfo], families: tuple, metrics: list[str]
) -> list[dict]:
    """Along each swept setting, each value against the next (everything else equal, seeds paired), pooled
    over each language family: what an ablation asks (how much English? which MT?)."""
    info = {r.name: r for r in runs}
    lines: dict[tuple, list[tuple[RunInfo, RunInfo]]] = defaultdict(list)
    for c in neighbours(runs):
        a, b = info[c.a], info[c.b]
        lines[a.group, a.mixture, b.group, b.mixture].append((a, b))
    out = []
    for pairs in lines.values():
        a, b = pairs[0]
        setting = next(path for (path, x), (_, y) in zip(a.axes, b.axes, strict=True) if x != y)
        out += [{"setting": setting} | comparison(scores, pairs, label, langs, metric)
                for label, langs in families if langs for metric in metrics]  # fmt: skip
    return out


def sentences(result: dict) -> list[str]:
    """The comparisons in words, each with its numbers, saying plainly which differences are not significant."""
    out = []
    for c in result["comparisons"] + result.get("along", []):
        metric = c.get("metric", "fidelity")
        if c["difference"] is None or c["ci"] is None:
            out.append(f"{c['a']} vs {c['b']} on {c['on']}" + (" (judge score)" if metric == "score" else "")
                       + f": {c['verdict']}.")  # fmt: skip
            continue
        lo, hi = c["ci"]
        d = c["difference"]
        if metric == "score":
            ahead = "higher than" if d > 0 else "lower than" if d < 0 else "the same as"
            said = (f"On {c['on']}, {c['a']} gets a mean judge score (judge x language ok) {ahead} {c['b']}: "
                    f"{c['score_a']:.2f} vs {c['score_b']:.2f} over {c['answers']} paired answers "
                    f"(difference {d:+.2f}, 95 % CI {lo:+.2f} to {hi:+.2f}")  # fmt: skip
        else:
            ahead = "more often than" if d > 0 else "less often than" if d < 0 else "as often as"
            said = (f"On {c['on']}, {c['a']} answers in the prompt's language {ahead} {c['b']}: "
                    f"{c['fidelity_a']:.0%} vs {c['fidelity_b']:.0%} of {c['answers']} paired answers "
                    f"(difference {d:+.0%}, 95 % CI {lo:+.0%} to {hi:+.0%}")  # fmt: skip
        out.append(said + (f" over {c['seeds']} seeds and their prompts" if c.get("seeds") else f", p = {c['p']}")
                   + f"): {c['verdict']}.")  # fmt: skip
    return out
