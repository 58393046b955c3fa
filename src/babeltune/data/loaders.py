"""Loaders: each turns one source format into Examples or TestPrompts with stable ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from babeltune.data.schema import Example, TestPrompt
from babeltune.io import read_json
from babeltune.registry import BabeltuneError

BUILTIN = resources.files("babeltune") / "resources" / "builtin"
USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant", "model", "bot"}


# --- built-in data ---------------------------------------------------------------------------------


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


# --- instruction data: Alpaca JSON, JSONL, ShareGPT, HF datasets ------------------------------------


def _json_lines(path: Path) -> list[tuple[int, object]]:
    out = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise BabeltuneError(f"{path}:{n}: not valid UTF-8 (byte {err.start})") from None
            if line.strip():
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise BabeltuneError(f"{path}:{n}: invalid JSON: {err.msg}") from None
    return out


def _records(source: str, fmt: str, split: str) -> tuple[str, list[tuple[int, object]]]:
    """(label for messages, [(line or index, row)]) for any supported source."""
    if fmt == "hf" or source.startswith("hf:") or Path(source).is_dir():
        import datasets

        if source.startswith("hf:"):
            ds = datasets.load_dataset(source.removeprefix("hf:"), split=split)
        else:
            ds = datasets.load_from_disk(source)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise BabeltuneError(f"{source}: no split {split!r}; it has {', '.join(ds)}")
                ds = ds[split]
        return source, list(enumerate(ds, 1))
    path = Path(source)
    if not path.exists():
        raise BabeltuneError(f"{path}: no such file")
    if fmt == "jsonl" or (fmt != "alpaca" and path.suffix == ".jsonl"):
        return str(path), _json_lines(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise BabeltuneError(f"{path}: expected a JSON array of examples, got {type(data).__name__}")
    return str(path), list(enumerate(data, 1))


def _turns(row: dict) -> list[tuple[str, str]]:
    convo = row.get("conversations") or row.get("messages") or []
    return [
        (str(t.get("from") or t.get("role")), str(t.get("value") or t.get("content") or "")) for t in convo
    ]


def _from_sharegpt(row: dict, where: str) -> dict:
    """The first user turn and the assistant's answer to it."""
    turns = _turns(row)
    for i, (role, text) in enumerate(turns[:-1]):
        if role in USER_ROLES and turns[i + 1][0] in ASSISTANT_ROLES:
            return {"instruction": text, "input": "", "output": turns[i + 1][1]}
    raise BabeltuneError(f"{where}: conversation has no user turn followed by an assistant turn")


def examples_from_source(
    source: str,
    lang: str,
    fmt: str = "auto",
    column_map: dict[str, str] | None = None,
    split: str = "train",
    id_prefix: str | None = None,
) -> list[Example]:
    """Load any supported instruction source as one language's examples (ids: ``<prefix>-<position>``)."""
    label, records = _records(source, fmt, split)
    rename = column_map or {}
    stem = id_prefix or Path(label.removeprefix("hf:")).stem or "item"
    out = []
    for n, row in records:
        where = f"{label}:{n}"
        if not isinstance(row, dict):
            raise BabeltuneError(f"{where}: expected an object, got {type(row).__name__}")
        row = {k: row.get(v) for k, v in rename.items()} | {
            k: v for k, v in row.items() if k not in rename.values()
        }
        if fmt == "sharegpt" or (fmt == "auto" and ("conversations" in row or "messages" in row)):
            fields = _from_sharegpt(row, where)
        else:
            bad = [k for k in ("instruction", "output") if not isinstance(row.get(k), str)]
            if bad:
                hint = " (map other names with data.column_map)" if any(k not in row for k in bad) else ""
                raise BabeltuneError(f"{where}: missing or non-string field(s): {', '.join(bad)}{hint}")
            fields = {
                "instruction": row["instruction"],
                "input": row.get("input") or "",
                "output": row["output"],
            }
        sid = str(row["id"]) if row.get("id") is not None else f"{stem}-{n:06d}"
        out.append(
            Example(f"{sid}:{lang}", sid, lang, fields["instruction"], fields["input"], fields["output"])
        )
    return out


# --- test prompts in the paper's format ------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def read_test_file(path: Path, lang: str, align: str) -> tuple[list[TestPrompt], list[Problem]]:
    """One ``test_<lang>.jsonl``: prompts from the good lines, and a Problem for each bad one.

    With ``align="line"`` prompts are joined across languages by line number, as the paper's files
    need (their ids differ across languages); with ``align="id"`` by their ``id`` field.
    """
    prompts, problems = [], []
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            lines = fh.read().splitlines()  # a missing trailing newline is fine
        except UnicodeDecodeError as err:
            return [], [Problem(str(path), 1, f"not UTF-8 ({err.reason})")]
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(Problem(str(path), n, f"invalid JSON: {err.msg} (column {err.colno})"))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            problems.append(Problem(str(path), n, "no non-empty string field 'prompt'"))
            continue
        sid = f"line-{n:04d}" if align == "line" else str(row.get("id", f"line-{n:04d}"))
        prompts.append(TestPrompt(f"{sid}:{lang}", sid, lang, row["prompt"], row.get("reference")))
    return prompts, problems


def test_prompt_files(files: dict[str, Path], align: str, on_error: str) -> tuple[list[TestPrompt], dict]:
    """Load test files per language; fail on bad lines (listing all) or skip and count them."""
    prompts, problems = [], []
    for lang, path in files.items():
        if not Path(path).exists():
            raise BabeltuneError(f"{path}: no test file for language {lang!r}")
        got, bad = read_test_file(Path(path), lang, align)
        prompts += got
        problems += bad
    if problems and on_error == "fail":
        listing = "\n".join(str(p) for p in problems)
        raise BabeltuneError(
            f"{len(problems)} bad line(s) in test files (test.on_error=skip skips them):\n{listing}"
        )
    ids = {lang: {p.source_id for p in prompts if p.lang == lang} for lang in files}
    shared = set.intersection(*ids.values()) if ids else set()
    manifest = {
        "per_language": {lang: len(v) for lang, v in ids.items()},
        "skipped_lines": [str(p) for p in problems],
        "align": align,
        "prompts_missing_in_some_language": sorted(set.union(*ids.values()) - shared) if ids else [],
    }
    return prompts, manifest
