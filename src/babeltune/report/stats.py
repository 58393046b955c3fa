"""Uncertainty over prompts: bootstrap confidence intervals, paired permutation tests and the Holm correction
(pure functions, vectorised: a report of the paper's grid computes thousands of them)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _resample_rows(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x ``n`` indices drawn with replacement; the same for every interval over n values."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


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
    means = np.sort(np.asarray(values, dtype=float)[_resample_rows(n, resamples, seed)].mean(axis=1))
    tail = (1 - level) / 2
    lo, hi = means[int(tail * resamples)], means[min(resamples - 1, int((1 - tail) * resamples))]
    return round(float(lo), 4), round(float(hi), 4)


MIN_PAIRED = 10  # fewer shared prompts than this: no significance claim at all
EXACT_UP_TO = 16  # below this many non-zero differences the permutation test enumerates every sign flip


@lru_cache(maxsize=32)
def _every_flip(n: int) -> np.ndarray:
    """All 2**n sign patterns, one per row."""
    masks = np.arange(1 << n)[:, None] >> np.arange(n) & 1
    return (2 * masks - 1).astype(np.int8)


@lru_cache(maxsize=8)
def _random_flips(n: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` x ``n`` random signs, as int8 (a byte each: the cache stays small)."""
    return np.random.default_rng(seed).choice(np.array([-1, 1], dtype=np.int8), size=(samples, n))


def _flipped_sums(signs: np.ndarray, diffs: np.ndarray, rows: int = 4096) -> np.ndarray:
    """|signs @ diffs|, in blocks of rows so the float copy of the signs stays small."""
    return np.concatenate([np.abs(signs[i : i + rows] @ diffs) for i in range(0, len(signs), rows)])


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
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diffs = diffs[diffs != 0]
    if not len(diffs):
        return 1.0
    observed = abs(diffs.sum()) - 1e-9
    if len(diffs) <= EXACT_UP_TO:
        return round(float(np.mean(_flipped_sums(_every_flip(len(diffs)), diffs) >= observed)), 4)
    hits = int(np.count_nonzero(_flipped_sums(_random_flips(len(diffs), samples, seed), diffs) >= observed))
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


def hierarchical_ci(
    groups: list[list[float]], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Bootstrap interval of the mean over groups (training seeds) of each group's mean (over prompts):
    seeds are resampled, then prompts within each chosen seed, so an effect that one seed carries alone
    does not look certain. None with fewer than 2 groups.

    >>> lo, hi = hierarchical_ci([[0.3, 0.2, 0.4] * 10] * 3); lo > 0
    True
    >>> lo, hi = hierarchical_ci([[0.9] * 30, [0.0] * 30, [0.0] * 30]); lo <= 0 < hi
    True
    """
    if len(groups) < 2 or any(len(g) < 2 for g in groups):
        return None
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(groups), size=(resamples, len(groups)))
    within = np.stack(  # each group's mean under each prompt resample
        [np.asarray(g, dtype=float)[_resample_rows(len(g), resamples, seed + 1 + i)].mean(axis=1)
         for i, g in enumerate(groups)], axis=1
    )  # fmt: skip
    means = np.sort(np.take_along_axis(within, chosen, axis=1).mean(axis=1))
    tail = (1 - level) / 2
    lo, hi = means[int(tail * resamples)], means[min(resamples - 1, int((1 - tail) * resamples))]
    return round(float(lo), 4), round(float(hi), 4)
