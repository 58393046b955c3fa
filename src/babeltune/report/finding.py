"""The experiment's question answered from its own numbers: which regime answers in the prompt's language?

Fidelity is the share of answers whose verdict is ``ok`` (a real answer, in the prompt's language), pooled
over the seen non-English test languages and over the unseen ones. The paper's comparisons are paired over
the (prompt, language) answers both runs gave, with a bootstrap 95 % interval and a permutation p-value;
a difference whose interval holds 0 is said to be not significant.
"""

from __future__ import annotations

from statistics import mean

from babeltune.records import Score
from babeltune.report.contrasts import DOWNSAMPLED, ENGLISH, MONO, MULTI, RunInfo, by_regime
from babeltune.report.stats import MIN_PAIRED, bootstrap_ci, hierarchical_ci, paired_ci, paired_permutation_p


def _ok(rows: list[Score]) -> dict[tuple[str, str], float]:
    return {(r.source_id, r.lang): float(r.verdict == "ok") for r in rows}


def pooled(rows: list[Score], langs: set[str]) -> dict:
    """Fidelity over the answers in ``langs``, with its bootstrap interval."""
    values = [v for (_, lang), v in _ok(rows).items() if lang in langs]
    return {"answers": len(values), "fidelity": round(mean(values), 3) if values else None,
            "ci": bootstrap_ci(values)}  # fmt: skip


def compare(a: list[Score], b: list[Score], langs: set[str]) -> dict:
    """Paired difference in fidelity (a - b) over the answers both runs gave in ``langs``."""
    xa, xb = paired(a, b, langs)
    if len(xa) < MIN_PAIRED:
        return {"answers": len(xa), "fidelity_a": None, "fidelity_b": None, "difference": None, "ci": None, "p": None,
                "significant": False, "verdict": f"not tested: fewer than {MIN_PAIRED} shared answers"}  # fmt: skip
    ci, p = paired_ci(xa, xb), paired_permutation_p(xa, xb)
    diff = round(mean(xa) - mean(xb), 3)
    # Both must agree: the exact test (p < 0.05) and the bootstrap interval (0 outside it).
    significant = p is not None and p < 0.05 and ci is not None and (ci[0] > 0 or ci[1] < 0)
    return {"answers": len(xa), "fidelity_a": round(mean(xa), 3), "fidelity_b": round(mean(xb), 3),
            "difference": diff, "ci": ci,
            "p": p, "significant": significant,
            "verdict": "significant" if significant else "not significant (p >= 0.05 or the 95 % interval holds 0)"}  # fmt: skip


def _by_seed(runs: list[RunInfo]) -> dict:
    return {r.seed: r for r in runs}


def comparison(
    scores: dict[str, list[Score]], pairs: list[tuple[RunInfo, RunInfo]], label: str, langs: set[str]
) -> dict:
    """One of the paper's comparisons: one pair of runs, or the same pair trained with several seeds, judged
    across seeds (a seed that carries the difference alone does not make it significant)."""
    head = {"on": label, "languages": sorted(langs)}
    if len(pairs) == 1:
        ((a, b),) = pairs
        return {"a": a.name, "b": b.name} | head | compare(scores[a.name], scores[b.name], langs)
    per_seed = [compare(scores[a.name], scores[b.name], langs) for a, b in pairs]
    diffs = [
        [x - y for x, y in zip(*paired(scores[a.name], scores[b.name], langs), strict=True)] for a, b in pairs
    ]
    ci = hierarchical_ci(diffs)
    significant = ci is not None and (ci[0] > 0 or ci[1] < 0)
    tested = [c for c in per_seed if c["difference"] is not None]
    return {"a": pairs[0][0].group + f"/{pairs[0][0].mixture} ({len(pairs)} seeds)",
            "b": pairs[0][1].group + f"/{pairs[0][1].mixture} ({len(pairs)} seeds)"} | head | {
        "answers": sum(c["answers"] for c in per_seed), "seeds": len(pairs),
        "fidelity_a": _mean_of(tested, "fidelity_a"), "fidelity_b": _mean_of(tested, "fidelity_b"),
        "difference": _mean_of(tested, "difference"), "per_seed": [c["difference"] for c in per_seed],
        "ci": ci, "p": None, "significant": significant,
        "verdict": "significant across seeds" if significant else
                   "not significant across seeds (the 95 % interval over seeds and prompts holds 0)",
    }  # fmt: skip


def _mean_of(rows: list[dict], key: str) -> float | None:
    return round(mean(r[key] for r in rows), 3) if rows else None


def paired(a: list[Score], b: list[Score], langs: set[str]) -> tuple[list[float], list[float]]:
    """Fidelity (1 ok, 0 not) of the answers both runs gave in ``langs``, paired by (prompt, language)."""
    ok_a, ok_b = _ok(a), _ok(b)
    keys = sorted(k for k in ok_a.keys() & ok_b.keys() if k[1] in langs)
    return [ok_a[k] for k in keys], [ok_b[k] for k in keys]


def finding(
    scores: dict[str, list[Score]], runs: list[RunInfo], seen: set[str], test_langs: list[str]
) -> dict:
    """Per-run fidelity on seen non-English and unseen languages, and the paper's comparisons."""
    seen_other = {lang for lang in test_langs if lang in seen and lang != "en"}
    unseen = {lang for lang in test_langs if lang not in seen}
    per_run = [
        {"run": r.name, "regime": r.regime, "seen_non_english": pooled(scores[r.name], seen_other),
         "unseen": pooled(scores[r.name], unseen)}
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
                comparisons.append(comparison(scores, pairs, label, langs))
    return {"seen_non_english": sorted(seen_other), "unseen": sorted(unseen), "runs": per_run,
            "comparisons": comparisons}  # fmt: skip


def sentences(result: dict) -> list[str]:
    """The comparisons in words, each with its numbers, saying plainly which differences are not significant."""
    out = []
    for c in result["comparisons"]:
        if c["difference"] is None or c["ci"] is None:
            out.append(f"{c['a']} vs {c['b']} on {c['on']}: {c['verdict']}.")
            continue
        lo, hi = c["ci"]
        direction = (
            "more often than"
            if c["difference"] > 0
            else "less often than"
            if c["difference"] < 0
            else "as often as"
        )
        out.append(
            f"On {c['on']}, {c['a']} answers in the prompt's language {direction} {c['b']}: "
            f"{c['fidelity_a']:.0%} vs {c['fidelity_b']:.0%} of {c['answers']} paired answers "
            f"(difference {c['difference']:+.0%}, 95 % CI {lo:+.0%} to {hi:+.0%}"
            + (f" over {c['seeds']} seeds and their prompts" if c.get("seeds") else f", p = {c['p']}")
            + f"): {c['verdict']}."
        )
    return out
