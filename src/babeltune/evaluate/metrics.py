"""Reference metrics: small pure functions over (hypothesis, reference)."""

from __future__ import annotations

from sacrebleu.metrics import CHRF

_CHRF = CHRF()


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence-level chrF (0-100) with sacrebleu's defaults.

    >>> chrf("the cat sat", "the cat sat")
    100.0
    >>> chrf("", "the cat sat")
    0.0
    """
    return round(_CHRF.sentence_score(hypothesis, [reference]).score, 2)
