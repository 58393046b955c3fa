"""What every generation engine is: it says what decoding it cannot honour, loads a target, and answers
prompts, yielding each answer as it is ready. A new engine is one file that registers a subclass here and
is imported by ``engines.py``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from babeltune.inference.decoding import Decoding
from babeltune.inference.target import Target
from babeltune.registry import Registry


@dataclass(frozen=True)
class Prompt:
    id: str  # seeds the prompt's sampling
    text: str  # the user's instruction, before any template


@dataclass(frozen=True)
class Answer:
    prompt_text: str  # what the model was given (the prompt in its template, or the user message)
    text: str  # the raw text, before stop strings cut it
    new_tokens: int  # -1 where the engine does not say


class Engine:
    """``settings`` is the generate stage's settings (the engine reads only its own plumbing from them)."""

    name = ""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.precision = "fp32"  # what computes, once loaded

    def refuses(self, decoding: Decoding) -> str | None:
        """The first decoding setting this engine cannot honour, with why, or None."""
        return None

    def load(self, target: Target, run_name: str) -> None:
        raise NotImplementedError

    def answer(self, prompts: list[Prompt], decoding: Decoding) -> Iterator[tuple[Prompt, Answer]]:
        raise NotImplementedError


ENGINES: Registry[type[Engine]] = Registry("generation backend")
