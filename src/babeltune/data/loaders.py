"""Loaders: each turns one source format into Examples or TestPrompts with stable ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from babeltune.data.schema import Example, TestPrompt
from babeltune.io import bounded_lines, read_json, regular_file
from babeltune.registry import BabeltuneError, short

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


MAX_RECORD_BYTES = 4_000_000  # one example or test prompt; a longer line is an error, not a memory blow-up
DATASET_FOLDER = ("dataset_info.json", "dataset_dict.json", "state.json")  # what save_to_disk writes


def decode_line(raw: bytes, n: int, path: Path) -> str:
    """One line of UTF-8 (a byte-order mark on line 1 is fine)."""
    try:
        return raw.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise BabeltuneError(f"{path}:{n}: not valid UTF-8 (byte {err.start})") from None


def _json_lines(path: Path, max_bytes: int) -> list[tuple[int, object]]:
    out = []
    for n, raw in bounded_lines(path, max_bytes, "data.max_record_bytes"):
        line = decode_line(raw, n, path)
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as err:
                raise BabeltuneError(
                    f"{path}:{n}: invalid JSON: {getattr(err, 'msg', 'nested too deeply')}"
                ) from None
    return out


def _records(source: str, fmt: str, split: str, max_bytes: int) -> tuple[str, list[tuple[int, object]]]:
    """(label for messages, [(line or index, row)]) for any supported source."""
    if fmt == "hf" or source.startswith("hf:") or Path(source).is_dir():
        import datasets

        if source.startswith("hf:"):
            ds = datasets.load_dataset(source.removeprefix("hf:"), split=split)
        else:
            if not any((Path(source) / name).exists() for name in DATASET_FOLDER):
                raise BabeltuneError(
                    f"{source}: a folder, but not a datasets save_to_disk folder (no {' or '.join(DATASET_FOLDER)})"
                )
            ds = datasets.load_from_disk(source)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise BabeltuneError(f"{source}: no split {split!r}; it has {', '.join(ds)}")
                ds = ds[split]
        return source, list(enumerate(ds, 1))
    path = regular_file(Path(source), "data file")
    if fmt == "jsonl" or (fmt != "alpaca" and path.suffix == ".jsonl"):
        return str(path), _json_lines(path, max_bytes)
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
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> list[Example]:
    """Load any supported instruction source as one language's examples (ids: ``<prefix>-<position>``);
    an id given twice is an error naming both places (the same id would join two different items)."""
    label, records = _records(source, fmt, split, max_record_bytes)
    rename = column_map or {}
    stem = id_prefix or Path(label.removeprefix("hf:")).stem or "item"
    out = []
    first_seen: dict[str, int] = {}
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
        if sid in first_seen:
            raise BabeltuneError(f"{where}: duplicate id {short(sid)} (also at {label}:{first_seen[sid]})")
        first_seen[sid] = n
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


def read_test_file(
    path: Path, lang: str, align: str, max_record_bytes: int = MAX_RECORD_BYTES
) -> tuple[list[TestPrompt], list[Problem]]:
    """One ``test_<lang>.jsonl``: prompts from the good lines, and a Problem for each bad one.

    With ``align="line"`` prompts are joined across languages by line number, as the paper's files
    need (their ids differ across languages); with ``align="id"`` by their ``id`` field, which must then
    be unique in the file (a duplicate is a bad line naming the first).
    """
    prompts, problems, first_seen = [], [], {}
    regular_file(Path(path), "test file")
    for n, raw in bounded_lines(Path(path), max_record_bytes, "test.max_record_bytes"):
        try:
            line = decode_line(raw, n, Path(path))
        except BabeltuneError as err:
            problems.append(Problem(str(path), n, str(err).partition(f"{n}: ")[2]))
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as err:
            where = (
                f"{err.msg} (column {err.colno})"
                if isinstance(err, json.JSONDecodeError)
                else "nested too deeply"
            )
            problems.append(Problem(str(path), n, f"invalid JSON: {where}"))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            problems.append(Problem(str(path), n, "no non-empty string field 'prompt'"))
            continue
        sid = f"line-{n:04d}" if align == "line" else str(row.get("id", f"line-{n:04d}"))
        if sid in first_seen:
            problems.append(
                Problem(str(path), n, f"duplicate id {short(sid)} (also on line {first_seen[sid]})")
            )
            continue
        first_seen[sid] = n
        prompts.append(TestPrompt(f"{sid}:{lang}", sid, lang, row["prompt"], row.get("reference")))
    return prompts, problems


def test_prompt_files(
    files: dict[str, Path], align: str, on_error: str, max_record_bytes: int = MAX_RECORD_BYTES
) -> tuple[list[TestPrompt], dict]:
    """Load test files per language; fail on bad lines (listing all) or skip and count them."""
    prompts, problems = [], []
    for lang, path in files.items():
        got, bad = read_test_file(Path(path), lang, align, max_record_bytes)
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
