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
from babeltune.report.stats import MIN_PAIRED, bootstrap_ci, paired_ci, paired_permutation_p


def _ok(rows: list[Score]) -> dict[tuple[str, str], float]:
    return {(r.source_id, r.lang): float(r.verdict == "ok") for r in rows}


def pooled(rows: list[Score], langs: set[str]) -> dict:
    """Fidelity over the answers in ``langs``, with its bootstrap interval."""
    values = [v for (_, lang), v in _ok(rows).items() if lang in langs]
    return {"answers": len(values), "fidelity": round(mean(values), 3) if values else None,
            "ci": bootstrap_ci(values)}  # fmt: skip


def compare(a: list[Score], b: list[Score], langs: set[str]) -> dict:
    """Paired difference in fidelity (a - b) over the answers both runs gave in ``langs``."""
    ok_a, ok_b = _ok(a), _ok(b)
    keys = sorted(k for k in ok_a.keys() & ok_b.keys() if k[1] in langs)
    xa, xb = [ok_a[k] for k in keys], [ok_b[k] for k in keys]
    if len(keys) < MIN_PAIRED:
        return {"answers": len(keys), "fidelity_a": None, "fidelity_b": None, "difference": None, "ci": None, "p": None,
                "significant": False, "verdict": f"not tested: fewer than {MIN_PAIRED} shared answers"}  # fmt: skip
    ci, p = paired_ci(xa, xb), paired_permutation_p(xa, xb)
    diff = round(mean(xa) - mean(xb), 3)
    # Both must agree: the exact test (p < 0.05) and the bootstrap interval (0 outside it).
    significant = p is not None and p < 0.05 and ci is not None and (ci[0] > 0 or ci[1] < 0)
    return {"answers": len(keys), "fidelity_a": round(mean(xa), 3), "fidelity_b": round(mean(xb), 3),
            "difference": diff, "ci": ci,
            "p": p, "significant": significant,
            "verdict": "significant" if significant else "not significant (p >= 0.05 or the 95 % interval holds 0)"}  # fmt: skip


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
        for down in regimes[DOWNSAMPLED]:
            pairs = [
                (other, label, langs)
                for other in regimes[ENGLISH]
                for label, langs in (("seen non-English languages", seen_other), ("unseen languages", unseen))
            ]
            pairs += [
                (mono, f"{mono.languages[0]}, the monolingual run's own language", {mono.languages[0]})
                for mono in regimes[MONO]
                if mono.languages and mono.languages[0] in test_langs
            ]
            pairs += [(multi, "seen non-English languages", seen_other) for multi in regimes[MULTI]]
            for other, label, langs in pairs:
                if langs:
                    comparisons.append({"a": down.name, "b": other.name, "on": label, "languages": sorted(langs)}
                                       | compare(scores[down.name], scores[other.name], langs))  # fmt: skip
    return {"seen_non_english": sorted(seen_other), "unseen": sorted(unseen), "runs": per_run,
            "comparisons": comparisons}  # fmt: skip


def sentences(result: dict) -> list[str]:
    """The comparisons in words, each with its numbers, saying plainly which differences are not significant."""
    out = []
    for c in result["comparisons"]:
        if c["difference"] is None:
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
            f"(difference {c['difference']:+.0%}, 95 % CI {lo:+.0%} to {hi:+.0%}, p = {c['p']}): {c['verdict']}."
        )
    return out
