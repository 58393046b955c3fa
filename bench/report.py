"""Shared pieces of the benchmarks: min/median/max of each side with the ratio against the baseline, and
peak resident memory."""

from __future__ import annotations

import argparse
import resource
import statistics


def bench_parser(doc: str, repeats: int | None = None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as help, and ``--repeats`` where it repeats."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help="measurements of each side")
    return parser


def print_comparison(results: dict[str, list[float]], unit: str, what: str, target: float) -> float:
    """``results`` maps a side's name to its rates (higher is better); the first side is the baseline, the
    second the one the target is for; further sides are printed too (compare them with ``print_speedup``)."""
    for name, rates in results.items():
        print(
            f"  {name:<28} {unit} min {min(rates):7.2f}  median {statistics.median(rates):7.2f}  max {max(rates):7.2f}"
        )
    base, fast = list(results)[:2]
    return print_speedup(results, fast, base, what, target)


def print_speedup(
    results: dict[str, list[float]], fast: str, base: str, what: str, target: float | None = None
):
    ratio = statistics.median(results[fast]) / statistics.median(results[base])
    print(f"  speed-up of {what}: {ratio:.2f}x" + (f" (target: at least {target:g}x)" if target else ""))
    return ratio


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
