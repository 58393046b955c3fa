"""What every generation engine is: it says what decoding it cannot honour, loads a target, and answers
prompts, yielding each answer as it is ready. A new engine is one file that registers a subclass here and
is imported by ``engines.py``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from babeltune.inference.decoding import Decoding
from babeltune.inference.target import Target
from babeltune.registry import Registry
from babeltune.templates import build_prompt, chat_text


@dataclass(frozen=True)
class Prompt:
    id: str  # seeds the prompt's sampling
    text: str  # the user's instruction, before any template
    messages: tuple[dict, ...] = ()  # a whole conversation instead (a judge's), in the model's chat template


@dataclass(frozen=True)
class Answer:
    prompt_text: str  # what the model was given (the prompt in its template, or the user message)
    text: str  # the raw text, before stop strings cut it
    new_tokens: int  # -1 where the engine does not say


class Engine:
    """``settings`` is the generate stage's settings (the engine reads only its own plumbing from them)."""

    name = ""
    local = True  # runs a model here (an endpoint's engine does not: a local judge cannot answer through it)

    def __init__(self, settings) -> None:
        self.settings = settings
        self.precision = "fp32"  # what computes, once loaded

    def prompt_text(self, p: Prompt) -> str:
        """What the model is given: a conversation in the model's own chat template, else the instruction in
        the target's template (``load`` sets ``target`` and ``tokenizer``)."""
        if p.messages:
            return chat_text(self.tokenizer, list(p.messages))
        return build_prompt(self.target.template, self.tokenizer, p.text)

    def refuses(self, decoding: Decoding) -> str | None:
        """The first decoding setting this engine cannot honour, with why, or None."""
        return None

    def load(self, target: Target, run_name: str) -> None:
        raise NotImplementedError

    def answer(self, prompts: list[Prompt], decoding: Decoding) -> Iterator[tuple[Prompt, Answer]]:
        raise NotImplementedError


ENGINES: Registry[type[Engine]] = Registry("generation backend")
