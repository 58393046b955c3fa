"""Shared pieces of the benchmarks: min/median/max of each side with the ratio against the baseline, and
peak resident memory."""

from __future__ import annotations

import resource
import statistics


def print_comparison(results: dict[str, list[float]], unit: str, what: str, target: float) -> float:
    """``results`` maps a side's name to its rates (higher is better); the first side is the baseline."""
    for name, rates in results.items():
        print(
            f"  {name:<24} {unit} min {min(rates):7.2f}  median {statistics.median(rates):7.2f}  max {max(rates):7.2f}"
        )
    base, fast = (statistics.median(r) for r in results.values())
    print(f"  speed-up of {what}: {fast / base:.2f}x (target: at least {target:g}x)")
    return fast / base


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
