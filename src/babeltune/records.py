"""The records stages hand on, typed: an ``Example`` (data -> translate, mix, train) and a ``TestPrompt``
(data -> generate), a ``Response`` (generate -> evaluate, serve, compare) and a ``Score``
(evaluate -> report, compare, judge-agreement). Read a file's rows with ``read``; a row that lacks a field
the record needs is refused with the file and line, never half-read."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TypeVar

from babeltune.io import read_jsonl
from babeltune.registry import BabeltuneError

R = TypeVar("R", "Response", "Score")


@dataclass(frozen=True)
class Example:
    """One instruction example in one language."""

    id: str  # unique across languages: "<source_id>:<lang>"
    source_id: str  # shared by the translations of one item
    lang: str
    instruction: str
    input: str
    output: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Example:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class TestPrompt:
    """One test prompt in one language."""

    __test__ = False  # not a pytest class, whatever its name

    id: str  # "<source_id>:<lang>"
    source_id: str  # joins the same prompt across languages
    lang: str
    prompt: str
    reference: str | None = None
    file_id: str | None = (
        None  # the id its own file gave it (the paper's files: a different one per language)
    )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> TestPrompt:
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Response:
    """One answer to one test prompt."""

    id: str  # "<source_id>:<lang>"
    source_id: str  # joins the same prompt across languages and runs
    lang: str
    run: str  # e.g. "smollm2-135m/lora/mono-es"
    prompt: str
    response: str  # cut at the first stop string
    prompt_text: str = ""  # what the model was given: the prompt in its template
    reference: str | None = None  # a reference answer, for chrF
    raw: str = ""  # before the stop strings cut it ("" in files written before it was kept: the response)
    new_tokens: int = -1  # -1: the engine did not say
    decoding: dict = field(default_factory=dict)  # what shaped the text, the backend and precision that ran
    file_id: str | None = None  # the id the test file gave the prompt

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", self.response)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict, where: str = "a response") -> Response:
        return _from_dict(cls, row, where)


@dataclass(frozen=True)
class Score:
    """One response, scored: its language verdict, the judge's rating and raw text, the paper's score."""

    id: str
    source_id: str
    lang: str
    run: str
    response: str
    detected_lang: str
    verdict: str  # ok, wrong-language, mixed, echo, template, too-short, empty
    lang_match: bool  # verdict == ok: a real answer in the prompt's language
    judge_score: int | None  # None: not judged, unparsable or failed
    judge_raw: str | None  # the judge's text (None when it was not asked or failed)
    final_score: int | None  # judge x ok (None without a judge, or when an ok answer has no rating)
    chrf: float | None
    judge_error: str | None = None  # why the judgement failed
    prompt: str | None = None  # None in files written before scores carried it
    file_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict, where: str = "a score") -> Score:
        return _from_dict(cls, row, where)


def _from_dict(cls: type[R], row: dict, where: str) -> R:
    """``cls`` from a row: extra keys ignored, a missing field with a default takes it, one without is refused.

    >>> Score.from_dict({"id": "p1:es"}, "scores.jsonl:3")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: scores.jsonl:3: not a score record: no 'source_id' (and 10 more fields)
    """
    if not isinstance(row, dict):
        raise BabeltuneError(f"{where}: not a {cls.__name__.lower()} record: a JSON object is needed")
    names, required = _names(cls)
    missing = [name for name in required if name not in row]
    if missing:
        more = f" (and {len(missing) - 1} more fields)" if len(missing) > 1 else ""
        raise BabeltuneError(f"{where}: not a {cls.__name__.lower()} record: no {missing[0]!r}{more}")
    return cls(**{name: row[name] for name in names if name in row})


@cache
def _names(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A record's field names and those without a default (``fields`` per row cost a third of reading)."""
    every = fields(cls)
    return tuple(f.name for f in every), tuple(
        f.name for f in every if f.default is MISSING and f.default_factory is MISSING
    )


def read(cls: type[R], path: Path) -> list[R]:
    """Every row of a JSONL file as ``cls``, each error naming the file and line."""
    return [cls.from_dict(row, f"{path}: record {i}") for i, row in enumerate(read_jsonl(path), 1)]
