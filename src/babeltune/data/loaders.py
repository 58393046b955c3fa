"""Loaders: each turns one source format into Examples or TestPrompts with stable ids."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from babeltune.io import bounded_lines, regular_file
from babeltune.records import Example, TestPrompt
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


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class BadRecord(Exception):
    """One record that cannot become an example: its reason, for the listing of every bad record."""


def listing(problems: list[Problem], limit: int = 20) -> str:
    """The first ``limit`` problems, one a line, then how many more."""
    shown = "\n".join(map(str, problems[:limit]))
    return shown + (f"\n... and {len(problems) - limit} more" if len(problems) > limit else "")


def _json_lines(path: Path, max_bytes: int) -> list[tuple[int, object]]:
    out = []
    for n, raw in bounded_lines(path, max_bytes, "data.max_record_bytes"):
        line = decode_line(raw, n, path)
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as err:
                out.append((n, BadRecord(f"invalid JSON: {getattr(err, 'msg', 'nested too deeply')}")))
    return out


def _json_array(path: Path) -> list[tuple[int, object]]:
    """The records of a JSON array with the line each begins on (not its position in the array)."""
    with open(path, "rb") as fh:  # what is not an array is refused before the whole file is read
        head = fh.read(65536).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head and not head.startswith(b"["):
        kind = "an object" if head.startswith(b"{") else "something else"
        raise BabeltuneError(f"{path}: expected a JSON array of examples, got {kind}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise BabeltuneError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    decoder, records = json.JSONDecoder(), []
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        kind = "an object" if text.startswith("{", pos) else "something else"
        raise BabeltuneError(f"{path}: expected a JSON array of examples, got {kind}")
    pos += 1
    line, counted = 1, 0  # the line at ``counted``: newlines are counted once each, as the records go by
    while True:
        while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return records
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            record, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as err:
            where = line + text.count("\n", pos, max(getattr(err, "pos", pos), pos))
            raise BabeltuneError(
                f"{path}:{where}: invalid JSON: {getattr(err, 'msg', 'nested too deeply')}"
            ) from None
        records.append((line, record))
        pos = end


def hub_dataset(datasets, source: str, split: str):
    """A hub dataset, or one line saying why not (offline, no such dataset) and what to do instead."""
    try:
        return datasets.load_dataset(source.removeprefix("hf:"), split=split)
    except Exception as err:  # noqa: BLE001 - any failure of the hub client ends here, as one line
        why = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise BabeltuneError(
            f"data.source: cannot load {source} from the Hugging Face Hub ({why}); without network, save it "
            "once where there is (datasets' save_to_disk) and give that folder as data.source"
        ) from None


def _records(source: str, fmt: str, split: str, max_bytes: int) -> tuple[str, list[tuple[int, object]]]:
    """(label for messages, [(line, row)]) for any supported source; a row that cannot be parsed is a
    BadRecord in its place."""
    if fmt == "hf" or source.startswith("hf:") or Path(source).is_dir():
        import datasets

        if source.startswith("hf:"):
            ds = hub_dataset(datasets, source, split)
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
    return str(path), _json_array(path)


def _turns(row: dict) -> list[tuple[str, str]]:
    convo = row.get("conversations") or row.get("messages") or []
    if not isinstance(convo, list):
        raise BadRecord("conversations is not a list of turns")
    return [
        (str(t.get("from") or t.get("role")), str(t.get("value") or t.get("content") or ""))
        for t in convo
        if isinstance(t, dict)
    ]


def _from_sharegpt(row: dict, turns: str) -> list[dict]:
    """One example per answered user turn, the earlier turns as its input (``turns="all"``), or the first
    one only (``"first"``)."""
    convo = _turns(row)
    pairs = [
        i
        for i, (role, _) in enumerate(convo[:-1])
        if role in USER_ROLES and convo[i + 1][0] in ASSISTANT_ROLES
    ]
    if not pairs:
        raise BadRecord("conversation has no user turn followed by an assistant turn")
    out = []
    for i in pairs[:1] if turns == "first" else pairs:
        context = "\n".join(f"{'User' if r in USER_ROLES else 'Assistant'}: {t}" for r, t in convo[:i])
        out.append(
            {"instruction": convo[i][1], "input": context, "output": convo[i + 1][1], "turns": len(pairs)}
        )
    return out


def storable(text: str, name: str) -> None:
    """Text that UTF-8 can hold: JSON's "\\ud800" escapes decode to a lone surrogate no file can store.

    >>> storable("a " + chr(0xD800) + " b", "output")
    Traceback (most recent call last):
    babeltune.data.loaders.BadRecord: output: a lone surrogate (U+D800) at character 2, which no UTF-8 file can hold
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadRecord(f"{name}: a lone surrogate (U+{ord(text[err.start]):04X}) at character {err.start}, which no "
                        "UTF-8 file can hold") from None  # fmt: skip


def _fields(row: object, fmt: str, rename: dict[str, str], turns: str) -> list[dict]:
    """The example fields one record holds (several for a multi-turn conversation, each with how many
    answered turns the conversation has), or BadRecord."""
    if isinstance(row, BadRecord):
        raise row
    if not isinstance(row, dict):
        raise BadRecord(f"expected an object, got {type(row).__name__}")
    row = {k: row.get(v) for k, v in rename.items()} | {
        k: v for k, v in row.items() if k not in rename.values()
    }
    if fmt == "sharegpt" or (fmt == "auto" and ("conversations" in row or "messages" in row)):
        found = _from_sharegpt(row, turns)
    else:
        bad = [k for k in ("instruction", "output") if not isinstance(row.get(k), str)]
        if bad:
            hint = " (map other names with data.column_map)" if any(k not in row for k in bad) else ""
            raise BadRecord(f"missing or non-string field(s): {', '.join(bad)}{hint}")
        found = [
            {
                "instruction": row["instruction"],
                "input": row.get("input") or "",
                "output": row["output"],
                "turns": 0,
            }
        ]
    for f in found:
        for name in ("instruction", "input", "output"):
            storable(f[name], name)
        if not f["instruction"].strip():
            raise BadRecord("empty instruction")
        if not f["output"].strip():
            raise BadRecord("empty output")
    return [f | {"id": row.get("id")} for f in found]


@dataclass
class SourceReport:
    """What one source held: for the data manifest (nothing dropped silently)."""

    source: str
    records: int = 0
    examples: int = 0
    skipped: list[Problem] = field(default_factory=list)
    conversation_turns: int = 0  # answered user turns in ShareGPT conversations
    turns_used: int = 0

    def summary(self) -> dict:
        return {"source": self.source, "records": self.records, "examples": self.examples,
                "skipped": len(self.skipped), "skipped_records": [str(p) for p in self.skipped[:100]],
                "conversation_turns": self.conversation_turns, "turns_used": self.turns_used}  # fmt: skip


def read_source(
    source: str,
    lang: str,
    fmt: str = "auto",
    column_map: dict[str, str] | None = None,
    split: str = "train",
    id_prefix: str | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    on_error: str = "fail",
    sharegpt_turns: str = "first",
) -> tuple[list[Example], SourceReport]:
    """Any supported instruction source as one language's examples (ids: ``<prefix>-<position>``, or the
    record's own ``id``). Every bad record is found: with ``on_error="fail"`` one error lists them all (the
    first 20, then a count), with ``"skip"`` they are dropped and counted in the report. An id given twice
    is a bad record naming the first place."""
    label, records = _records(source, fmt, split, max_record_bytes)
    stem = id_prefix or Path(label.removeprefix("hf:")).stem or "item"
    report, out, first_seen = SourceReport(label, len(records)), [], {}
    for position, (n, row) in enumerate(records, 1):
        try:
            found = _fields(row, fmt, column_map or {}, sharegpt_turns)
            base = str(found[0]["id"]) if found[0]["id"] is not None else f"{stem}-{position:06d}"
            if base in first_seen:
                raise BadRecord(f"duplicate id {short(base)} (also at {label}:{first_seen[base]})")
        except BadRecord as err:
            report.skipped.append(Problem(label, n, str(err)))
            continue
        first_seen[base] = n
        if found[0]["turns"]:  # a conversation: how many of its answered turns became examples
            report.conversation_turns += found[0]["turns"]
            report.turns_used += len(found)
        for k, f in enumerate(found):
            sid = base if k == 0 else f"{base}.{k + 1}"
            out.append(Example(f"{sid}:{lang}", sid, lang, f["instruction"], f["input"], f["output"]))
    if report.skipped and on_error == "fail":
        raise BabeltuneError(f"{label}: {len(report.skipped)} bad record(s) (data.on_error: skip drops and counts "
                             f"them):\n{listing(report.skipped)}")  # fmt: skip
    report.examples = len(out)
    return out, report


def examples_from_source(*args, **kwargs) -> list[Example]:
    """``read_source`` without its report."""
    return read_source(*args, **kwargs)[0]


# --- test prompts in the paper's format ------------------------------------------------------------


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
        try:
            storable(row["prompt"], "prompt")
        except BadRecord as err:
            problems.append(Problem(str(path), n, str(err)))
            continue
        sid = f"line-{n:04d}" if align == "line" else str(row.get("id", f"line-{n:04d}"))
        if sid in first_seen:
            problems.append(
                Problem(str(path), n, f"duplicate id {short(sid)} (also on line {first_seen[sid]})")
            )
            continue
        first_seen[sid] = n
        own = None if row.get("id") is None else str(row["id"])
        prompts.append(TestPrompt(f"{sid}:{lang}", sid, lang, row["prompt"], row.get("reference"), own))
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
        "prompts_missing_in_some_language": missing_listing(ids, shared),
        "id_mismatches": id_mismatches(prompts) if align == "line" else [],
    }
    return prompts, manifest


def missing_listing(ids: dict[str, set[str]], shared: set[str]) -> list[str]:
    """Each prompt not in every language, with the languages that lack it: 'line-0002 (missing in es)'."""
    out = []
    for sid in sorted(set.union(*ids.values()) - shared) if ids else []:
        lacking = [lang for lang, have in ids.items() if sid not in have]
        out.append(f"{sid[:60]} (missing in {', '.join(lacking)})")
    return out


def id_mismatches(prompts: list[TestPrompt]) -> list[str]:
    """Lines joined by position whose files' own ids disagree, when the files otherwise share ids (the
    paper's files do, except zh line 13). Files with an id scheme of their own per language agree on no
    line and are not flagged."""
    by_line: dict[str, dict[str, str]] = {}
    for p in prompts:
        if p.file_id is not None:
            by_line.setdefault(p.source_id, {})[p.lang] = p.file_id
    joined = {sid: own for sid, own in by_line.items() if len(own) > 1}
    if not any(len(set(own.values())) == 1 for own in joined.values()):
        return []
    out = []
    for sid, own in sorted(joined.items()):
        common, _ = Counter(own.values()).most_common(1)[0]
        odd = {lang: i for lang, i in own.items() if i != common}
        if odd:
            langs = ", ".join(f"{lang} has {short(i)}" for lang, i in odd.items())
            out.append(f"{sid}: {langs}, the others {short(common)}")
    return out
