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


# Prompt-template headings and chat tokens an MT model (or a chat endpoint) may emit around its translation.
TEMPLATE = re.compile(r"^[ \t]*#{2,}[ \t]*[^\W\d_][\w ]{0,30}:|<\|[\w-]+\|>|\[/?INST\]|</?s>", re.M)
# A word for "translation" in the languages a preamble comes in ("Here is the translation:", "Traducción:").
PREAMBLE = re.compile(r"([^\n:]{1,60}):(?:\s|$)")  # a short first clause ending in a colon
TRANSLATION_WORD = re.compile(r"translat|tradu[cçz]|übersetz|перев[оеё]д|превод|překl|käänn|翻[译譯]", re.I)


def template_leak(source: str, target: str) -> str | None:
    r"""Chat tokens the source lacks, or template headings ("### Response:") when the source has no heading
    of that form (a source's own headings come back translated, so they are not compared word for word).

    >>> template_leak("Name a river.", "Nombra un río.\n### Explanation:\nEl Nilo")
    'template-leak'
    >>> template_leak("Use <s>.", "Utiliza <s>.") is None, template_leak("## Step 1: mix", "## Paso 1: mezcla") is None
    (True, True)
    """
    marks = lambda text: {m.group(0).strip().lower() for m in TEMPLATE.finditer(text)}  # noqa: E731
    source_marks, leaked = marks(source), marks(target) - marks(source)
    if any(m.startswith("#") for m in source_marks):
        leaked = {m for m in leaked if not m.startswith("#")}
    return "template-leak" if leaked else None


def preamble(source: str, target: str) -> str | None:
    r"""A first line announcing the translation ("Here is the translation:", "Traducción:") that the source
    does not open with.

    >>> preamble("Name a river.", "Here is the translation:\nNombra un río.")
    'preamble'
    >>> preamble("Translate to French: good day", "Traduce al francés: buenos días") is None
    True
    """
    lead = PREAMBLE.match(target.lstrip())
    if not lead or not TRANSLATION_WORD.search(lead.group(1)):
        return None
    return None if TRANSLATION_WORD.search(source.lstrip().split("\n", 1)[0]) else "preamble"
