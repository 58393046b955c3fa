"""Loaders: each turns one source format into Examples or TestPrompts."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from babeltune.data.schema import Example, TestPrompt
from babeltune.io import iter_jsonl, read_json
from babeltune.registry import BabeltuneError

BUILTIN = resources.files("babeltune") / "resources" / "builtin"


def _builtin_rows(name: str, langs: list[str], field: str) -> list[dict]:
    """Rows of a built-in file (one item per line, every language inside), checking ``langs`` exist."""
    rows = [
        json.loads(line) for line in (BUILTIN / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    have = sorted(k for k in rows[0] if len(k) == 2)
    for lang in langs:
        if lang not in have:
            raise BabeltuneError(f"{field}: the built-in {name} has no {lang!r}; it has {', '.join(have)}")
    return rows


def builtin_examples(langs: list[str]) -> list[Example]:
    """The team-written parallel sample: the same items in every training language."""
    rows = _builtin_rows("instructions.jsonl", langs, "data.languages")
    return [
        Example(
            f"{r['id']}:{lang}", r["id"], lang, r[lang]["instruction"], r[lang]["input"], r[lang]["output"]
        )
        for lang in langs
        for r in rows
    ]


def builtin_test_prompts(langs: list[str]) -> list[TestPrompt]:
    rows = _builtin_rows("test_prompts.jsonl", langs, "test.languages")
    return [
        TestPrompt(f"{r['id']}:{lang}", r["id"], lang, r[lang]["prompt"], r[lang]["reference"])
        for lang in langs
        for r in rows
    ]


def alpaca_examples(path: Path, lang: str) -> list[Example]:
    """An Alpaca JSON array or JSONL of {instruction, input, output}; ids are the item's position."""
    path = Path(path)
    if not path.exists():
        raise BabeltuneError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        numbered = list(iter_jsonl(path))
    else:
        data = read_json(path)
        if not isinstance(data, list):
            raise BabeltuneError(f"{path}: expected a JSON array of examples")
        numbered = list(enumerate(data, 1))
    out = []
    for n, row in numbered:
        missing = [k for k in ("instruction", "output") if not isinstance(row.get(k), str)]
        if missing:
            raise BabeltuneError(f"{path}:{n}: missing or non-string field(s): {', '.join(missing)}")
        sid = str(row.get("id", f"{path.stem}-{n:06d}"))
        out.append(
            Example(f"{sid}:{lang}", sid, lang, row["instruction"], row.get("input") or "", row["output"])
        )
    return out


def test_prompt_folder(folder: Path, langs: list[str]) -> list[TestPrompt]:
    """The paper's format: test_<lang>.jsonl with {"id", "prompt"} per line, optionally "reference"."""
    out = []
    for lang in langs:
        path = Path(folder) / f"test_{lang}.jsonl"
        if not path.exists():
            raise BabeltuneError(f"{path}: no test file for language {lang!r}")
        for n, row in iter_jsonl(path):
            if not isinstance(row.get("prompt"), str):
                raise BabeltuneError(f"{path}:{n}: missing or non-string field 'prompt'")
            sid = str(row.get("id", n))
            out.append(TestPrompt(f"{sid}:{lang}", sid, lang, row["prompt"], row.get("reference")))
    return out
