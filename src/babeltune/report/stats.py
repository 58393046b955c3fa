"""Uncertainty over prompts: bootstrap confidence intervals, paired permutation tests and the Holm correction
(pure functions)."""

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


MIN_PAIRED = 10  # fewer shared prompts than this: no significance claim at all
EXACT_UP_TO = 16  # below this many non-zero differences the permutation test enumerates every sign flip


def paired_permutation_p(
    a: list[float], b: list[float], samples: int = 20_000, seed: int = 0
) -> float | None:
    """Two-sided p-value of a paired sign-flip permutation test on the mean of ``a - b``: exact (every flip)
    for up to 16 non-zero differences, else from ``samples`` random flips. None below ``MIN_PAIRED`` pairs.

    >>> paired_permutation_p([3] * 10, [1] * 10)  # all 2**10 flips: only the all-plus and all-minus ones tie
    0.002
    >>> paired_permutation_p([1, 2] * 5, [1, 2] * 5), paired_permutation_p([3, 3], [1, 1])
    (1.0, None)
    """
    if len(a) != len(b) or len(a) < MIN_PAIRED:
        return None
    diffs = [x - y for x, y in zip(a, b, strict=True) if x != y]
    if not diffs:
        return 1.0
    observed = abs(sum(diffs)) - 1e-9
    if len(diffs) <= EXACT_UP_TO:
        flips = [
            [(d if (mask >> i) & 1 else -d) for i, d in enumerate(diffs)] for mask in range(1 << len(diffs))
        ]
        return round(sum(abs(sum(f)) >= observed for f in flips) / len(flips), 4)
    rng = random.Random(seed)
    hits = sum(abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed for _ in range(samples))
    return round((hits + 1) / (samples + 1), 4)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None): controls the chance of any false claim
    among all the comparisons made together.

    >>> holm([0.01, 0.04, 0.03, None])
    [0.03, 0.06, 0.06, None]
    """
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    out: list[float | None] = [None] * len(pvalues)
    running, m = 0.0, len(order)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = round(running, 4)
    return out


def paired_ci(
    a: list[float], b: list[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Bootstrap 95 % interval of the mean paired difference ``a - b`` (pairs resampled together)."""
    return bootstrap_ci([x - y for x, y in zip(a, b, strict=True)], resamples, seed)
