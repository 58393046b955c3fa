"""The one example schema every stage reads and writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Example:
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
