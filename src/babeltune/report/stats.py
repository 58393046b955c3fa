"""Uncertainty over prompts: bootstrap confidence intervals and paired bootstrap tests (pure functions)."""

from __future__ import annotations

import random


def bootstrap_ci(
    values: list[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean; None for fewer than 2 values.

    >>> bootstrap_ci([1.0] * 10)
    (1.0, 1.0)
    >>> lo, hi = bootstrap_ci([0, 1] * 20); lo < 0.5 < hi
    True
    """
    n = len(values)
    if n < 2:
        return None
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return round(means[int(tail * resamples)], 4), round(
        means[min(resamples - 1, int((1 - tail) * resamples))], 4
    )


def paired_bootstrap_p(a: list[float], b: list[float], resamples: int = 2000, seed: int = 0) -> float | None:
    """Two-sided p-value that the mean of ``a - b`` is zero, resampling prompts (pairs) with replacement.

    >>> paired_bootstrap_p([3, 3, 3, 3, 3, 3], [1, 1, 1, 1, 1, 1])
    0.0
    >>> paired_bootstrap_p([1, 2, 3, 1, 2, 3], [1, 2, 3, 1, 2, 3])
    1.0
    """
    n = len(a)
    if n < 2 or n != len(b):
        return None
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if all(d == 0 for d in diffs):
        return 1.0
    rng = random.Random(seed)
    means = [sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)]
    below = sum(m <= 0 for m in means) / resamples
    above = sum(m >= 0 for m in means) / resamples
    return round(min(1.0, 2 * min(below, above)), 4)
