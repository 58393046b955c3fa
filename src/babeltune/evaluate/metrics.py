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


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation; None when undefined (fewer than 3 pairs, or a constant side).

    >>> pearson([1, 2, 3, 4], [2, 4, 6, 8])
    1.0
    >>> pearson([1, 2, 3], [5, 5, 5]) is None
    True
    """
    n = len(xs)
    if n < 3 or n != len(ys):
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return round(sxy / (sxx * syy) ** 0.5, 4)


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions), 1-based.

    >>> ranks([10, 20, 20, 30])
    [1.0, 2.5, 2.5, 4.0]
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks).

    >>> spearman([1, 2, 3, 4], [1, 4, 9, 16])
    1.0
    """
    return pearson(ranks(xs), ranks(ys)) if len(xs) == len(ys) else None
