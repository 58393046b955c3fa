"""What shapes an answer's text: the decoding settings (also a served request's), stop strings, and each
prompt's own sampling seed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from babeltune.registry import BabeltuneError
from babeltune.settings import setting


@dataclass
class Decoding:
    """The decoding fields every engine honours (the generate stage's settings add plumbing to these)."""

    max_new_tokens: int = setting(96, "maximum new tokens per answer (the paper: 256)", ge=1, le=10**6)
    num_beams: int = setting(1, "beam search width (the paper: 4)", ge=1, le=64)
    do_sample: bool = setting(False, "sample instead of greedy/beam decoding")
    temperature: float = setting(1.0, "sampling temperature (below 0.01 sampling overflows: use greedy)", ge=0.01,
                                 le=100)  # fmt: skip
    top_p: float = setting(1.0, "nucleus sampling mass", gt=0, le=1)
    seed: int = setting(
        0, "sampling seed (each prompt samples from its own stream, derived from this and its id)"
    )
    no_repeat_ngram_size: int = setting(0, "forbid repeated n-grams of this size (the paper: 6)", ge=0)
    repetition_penalty: float = setting(
        1.0,
        "repetition penalty (the paper's full-parameter runs: 1.1); 1 is none, below 1 rewards repeating",
        ge=1,
        le=100,
    )
    stop: list[str] = setting(
        ["\n### "], "stop at the first of these strings (the paper: \\n### )", distinct=True
    )

    def check_stops(self, where: str) -> None:
        if any(s == "" for s in self.stop):
            raise BabeltuneError(
                f"{where}.stop: an empty stop string would end every answer before it starts"
            )


def stable_hash(text: str) -> int:
    """The same integer for the same text in every process (Python's hash() is salted per process)."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def prompt_seed(decoding: Decoding, prompt_id: str) -> int:
    """A prompt's own sampling seed: its answer does not depend on which prompts share its batch."""
    return decoding.seed + (stable_hash(prompt_id) >> 224)  # the hash's top 32 bits


def split_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found. A stop string that begins with a line
    break also stops a text that begins with the rest of it (an answer that is only the next header).

    >>> split_at_stop("Hello.\\n### Instruction:", ["\\n### "]), split_at_stop("### Response:", ["\\n### "])
    (('Hello.', True), ('', True))
    """
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    hits += [0 for s in stops if s[:1].isspace() and s.strip() and text.lstrip().startswith(s.lstrip())]
    return (text[: min(hits)], True) if hits else (text, False)


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Cut at the first stop string, then strip.

    >>> cut_at_stop("Paris.\\n### Instruction: more", ["\\n### "])
    'Paris.'
    """
    return split_at_stop(text, stops)[0].strip()


def length_sorted_batches(items: list, key: Callable, size: int) -> Iterator[list]:
    """Batches of similar length (longest first), so little compute is spent on padding."""
    ordered = sorted(items, key=key, reverse=True)
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]
