"""Quality filters for machine-translated examples: small pure checks, each returning a reason or None."""

from __future__ import annotations

import re
from collections import Counter


def empty(source: str, target: str) -> str | None:
    """
    >>> empty("Hello there", "  "), empty("", ""), empty("Hi", "Hallo")
    ('empty', None, None)
    """
    return "empty" if source.strip() and not target.strip() else None


def untranslated(source: str, target: str) -> str | None:
    """The output equals the source (ignoring case and spacing); short or non-prose texts may legitimately match.

    >>> untranslated("Explain photosynthesis briefly.", "explain photosynthesis  briefly."), untranslated("OK", "OK")
    ('untranslated', None)
    """
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    letters = sum(ch.isalpha() for ch in source)
    return "untranslated" if letters >= 12 and norm(source) == norm(target) else None


def length_ratio(source: str, target: str, low: float, high: float) -> str | None:
    """Characters of target / source outside [low, high] (skipped for very short sources).

    >>> length_ratio("A sentence of reasonable length.", "Kurz.", 0.3, 3.0)
    'length-ratio'
    >>> length_ratio("A sentence of reasonable length.", "Ein Satz von vernünftiger Länge.", 0.3, 3.0) is None
    True
    """
    if len(source) < 20:
        return None
    ratio = len(target) / len(source)
    return "length-ratio" if not low <= ratio <= high else None


def repetition_loop(target: str, n: int = 3, max_repeats: int = 4) -> str | None:
    """An n-gram (of words, or characters for unspaced scripts) repeated more than ``max_repeats`` times.

    >>> repetition_loop("the cat sat on the mat " + "and then and then and then " * 3)
    'repetition-loop'
    >>> repetition_loop("A perfectly normal sentence with no loops in it at all.") is None
    True
    """
    words = target.split()
    units = words if len(words) >= 8 else list(re.sub(r"\s", "", target))
    grams = Counter(tuple(units[i : i + n]) for i in range(len(units) - n + 1))
    return "repetition-loop" if grams and max(grams.values()) > max_repeats else None
