"""Fidelity: is an answer a real answer, in the prompt's language, all the way through?

Each answer gets one verdict, checked in this order:

- ``empty``: no letters or digits at all;
- ``template``: nothing but prompt-template text (``### Response:``, the Alpaca preamble);
- ``echo``: mostly a copy of the prompt (character 5-grams: see ``echo_share``);
- ``mixed``: some lines in the prompt's language and some in another (the Language Confusion Benchmark's
  line-level check; lines of at least ``LINE_LETTERS`` letters);
- ``too-short``: too few letters to tell its language (a CJK character counts as a word);
- ``wrong-language``: the answer as a whole is in another language;
- ``ok``: none of these. Only ``ok`` counts as language-consistent, and only an ``ok`` answer keeps its
  judge score.
"""

from __future__ import annotations

import re

from babeltune.langid import TOO_SHORT, LangIdArgs, clean_for_lid, detect, letter_count, matches
from babeltune.templates import ALPACA_NO_INPUT, ALPACA_WITH_INPUT

VERDICTS = ("ok", "wrong-language", "mixed", "echo", "template", "too-short", "empty")
ECHO_SHARE = 0.6  # an answer whose 5-grams are mostly the prompt's: chosen on real echoes and real answers
LINE_LETTERS = (
    15  # a line is checked on its own from this many letters (60 of 60 mixed answers, 0 of 960 others)
)

_HEADERS = re.compile(r"#+\s*(?:instruction|input|response|answer)\s*:?", re.I)
_PREAMBLES = [p.split("\n")[0] for p in (ALPACA_NO_INPUT, ALPACA_WITH_INPUT)]


def is_empty(text: str) -> bool:
    """
    >>> is_empty("  ...  "), is_empty("42")
    (True, False)
    """
    return not any(ch.isalnum() for ch in text)


def is_template(text: str) -> bool:
    """Only template text: headers such as ``### Response:`` and the Alpaca preamble.

    >>> is_template("### Response:"), is_template("### Response: Paris is the capital.")
    (True, False)
    """
    rest = _HEADERS.sub(" ", text)
    for preamble in _PREAMBLES:
        rest = rest.replace(preamble, " ")
    return not any(ch.isalnum() for ch in rest) and not is_empty(text)


def _grams(text: str, n: int = 5) -> set[str]:
    flat = " ".join(text.lower().split())
    return {flat[i : i + n] for i in range(max(len(flat) - n + 1, 1))}


def echo_share(answer: str, prompt: str) -> float:
    """The share of the answer's character 5-grams that are also the prompt's.

    >>> echo_share("Hva er hovedstaden i Norge?", "Hva er hovedstaden i Norge?")
    1.0
    >>> echo_share("Oslo er hovedstaden i Norge, og den største byen.", "Hva er hovedstaden i Norge?") < 0.6
    True
    """
    grams = _grams(answer)
    return round(len(grams & _grams(prompt)) / len(grams), 3) if grams else 0.0


def _lines(answer: str) -> list[str]:
    return [line for raw in clean_for_lid(answer, keep_lines=True).split("\n") if (line := raw.strip())]


def verdicts(
    answers: list[str], prompts: list[str], langs: list[str], cfg: LangIdArgs, raws: list[str] | None = None
) -> list[tuple[str, str]]:
    """(verdict, detected language of the whole answer) for each answer; language ID runs in batches.
    ``raws`` are the answers before stop strings cut them: one cut to nothing because it began with a
    template header (``### Response:``) is ``template``, not ``empty``."""
    raws = raws or answers
    whole = detect(answers, cfg)
    lines = [[line for line in _lines(a) if letter_count(line) >= LINE_LETTERS] for a in answers]
    flat = detect([line for group in lines for line in group], cfg)
    out, k = [], 0
    for answer, raw, prompt, lang, d, group in zip(answers, raws, prompts, langs, whole, lines, strict=True):
        line_match = [matches(lang, x.lang, cfg) for x in flat[k : k + len(group)] if x.lang != TOO_SHORT]
        k += len(group)
        if is_empty(answer):
            verdict = "template" if _HEADERS.match(raw.lstrip()) else "empty"
        elif is_template(answer):
            verdict = "template"
        elif echo_share(answer, prompt) >= ECHO_SHARE:
            verdict = "echo"
        elif any(line_match) and not all(line_match):  # some lines in the prompt's language, some not
            verdict = "mixed"
        elif d.lang == TOO_SHORT:
            verdict = "too-short"
        elif not matches(lang, d.lang, cfg):
            verdict = "wrong-language"
        else:
            verdict = "ok"
        out.append((verdict, d.lang))
    return out
