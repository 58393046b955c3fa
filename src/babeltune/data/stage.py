"""Data stage: its settings (training data, test prompts), its tasks, and the files it writes:
``examples.jsonl`` (training data) and ``test_prompts.jsonl`` (test set), each with a manifest."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from babeltune import languages
from babeltune.data import loaders
from babeltune.io import fingerprint, read_jsonl, sha256_file, write_json, write_jsonl
from babeltune.records import Example, TestPrompt
from babeltune.registry import BabeltuneError
from babeltune.settings import setting
from babeltune.tasks import Task

EXAMPLES = "examples.jsonl"
TEST_PROMPTS = "test_prompts.jsonl"


@dataclass
class DataArgs:
    source: str = setting(
        "builtin",
        "'builtin' (the bundled parallel sample), a file (Alpaca JSON, JSONL, ShareGPT), a datasets "
        "save_to_disk folder, or hf:<hub id>",
    )
    sources: dict[str, str] = setting(
        {},
        "one index-parallel source per language, e.g. {en: hf:yahma/alpaca-cleaned, de: ...} (overrides source)",
    )
    size_hint: int | None = setting(
        None,
        "examples per language, for `plan`'s budget table when the data is not at hand (the paper: 51760)",
        affects_result=False,
        ge=1,
    )
    format: Literal["auto", "alpaca", "jsonl", "sharegpt", "hf"] = setting(
        "auto", "format of `source` (auto: guess)"
    )
    column_map: dict[str, str] = setting({}, "field renames, e.g. {instruction: question, output: answer}")
    split: str = setting("train", "split of a datasets source")
    languages: list[str] = setting(
        list(languages.PAPER_TRAIN),
        "training languages (ISO 639-1); English is in the pool",
        nonempty=True,
        distinct=True,
    )
    source_language: str = setting("en", "language of a user file given in `source` (one language per file)")
    max_examples_per_language: int | None = setting(
        None, "keep only the first N examples of each language", ge=1
    )
    on_error: Literal["fail", "skip"] = setting(
        "fail",
        "bad records (empty instruction, missing field, invalid JSON, duplicate id): fail listing every "
        "one, or skip and count them in data_manifest.json",
    )
    sharegpt_turns: Literal["first", "all"] = setting(
        "first",
        "ShareGPT conversations: the first answered user turn only, or one example per answered turn "
        "with the earlier turns as its input (counted in data_manifest.json)",
    )
    max_record_bytes: int = setting(
        loaders.MAX_RECORD_BYTES, "largest line of a JSONL source, in bytes", affects_result=False, ge=1
    )

    def check(self, where: str) -> None:
        for code in self.languages:
            languages.check(code, f"{where}.languages")
        languages.check(self.source_language, f"{where}.source_language")

    def local_sources(self, where: str) -> dict[str, Path]:
        """The files or folders this data is read from, by the field that names each."""
        named = {f"{where}.sources.{lang}": s for lang, s in self.sources.items()} or {
            f"{where}.source": self.source
        }
        return {k: Path(s) for k, s in named.items() if s != "builtin" and not s.startswith("hf:")}


@dataclass
class TestArgs:
    __test__ = False  # not a pytest test class, despite the name
    source: str = setting(
        "builtin", "'builtin' test prompts with references, or a folder of test_<lang>.jsonl files"
    )
    files: dict[str, str] = setting(
        {}, "test file per language, e.g. {bn: data/bengali.jsonl} (overrides `source`)"
    )
    on_error: Literal["fail", "skip"] = setting(
        "fail", "bad lines in test files: fail, or skip and count them"
    )
    align: Literal["line", "id"] = setting(
        "line", "join languages by line order (the paper's files) or by id"
    )
    languages: list[str] = setting(
        ["en", "es", "fr", "ru", "zh", "bn", "no"],
        "test languages; unseen ones are fine",
        nonempty=True,
        distinct=True,
    )
    max_prompts: int | None = setting(None, "use only the first N prompts of each language", ge=1)
    max_record_bytes: int = setting(
        loaders.MAX_RECORD_BYTES, "largest line of a test file, in bytes", affects_result=False, ge=1
    )

    def check(self, where: str) -> None:
        for code in self.languages:
            languages.check(code, f"{where}.languages")

    def test_files(self) -> dict[str, Path]:
        """The test file of each language (none for the built-in prompts)."""
        if self.source == "builtin" and not self.files:
            return {}
        if not self.files and Path(self.source).is_file():
            raise BabeltuneError(f"test.source: {self.source} is a file; it names a folder of test_<lang>.jsonl "
                                 "files (or set test.files: {lang: file})")  # fmt: skip
        return {
            lang: Path(self.files.get(lang) or Path(self.source) / f"test_{lang}.jsonl")
            for lang in self.languages
        }

    def needs(self, where: str) -> dict[str, Path]:
        """The test files, by the field that names each."""
        return {
            f"{where}.files.{lang}" if lang in self.files else f"{where}.source ({lang})": path
            for lang, path in self.test_files().items()
        }


@dataclass
class DataJob:
    """What the examples are made from: the settings and what the source files held when planned."""

    data: DataArgs
    contents: dict[str, str]  # field -> fingerprint of the file it names (a rewritten file is read again)

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Path:
        return run(self.data, out_dir)

    def locate(self, folder: Path, part: str) -> Path:
        return folder / EXAMPLES


@dataclass
class TestsJob:
    test: TestArgs
    contents: dict[str, str]

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Path:
        return run_tests(self.test, out_dir)

    def locate(self, folder: Path, part: str) -> Path:
        return folder / TEST_PROMPTS


def examples_task(cfg: DataArgs) -> Task:
    sources = cfg.local_sources("data")
    return Task(
        "data",
        "training examples",
        DataJob(cfg, {k: fingerprint(p) for k, p in sources.items()}),
        needs=sources,
    )


def tests_task(cfg: TestArgs) -> Task:
    files = cfg.needs("test")
    return Task(
        "data", "test prompts", TestsJob(cfg, {k: fingerprint(p) for k, p in files.items()}), folder="tests",
        needs=files,
    )  # fmt: skip


def read_examples(path: Path) -> list[Example]:
    return [Example.from_dict(r) for r in read_jsonl(path)]


def read_test_prompts(path: Path) -> list[TestPrompt]:
    return [TestPrompt.from_dict(r) for r in read_jsonl(path)]


def first_n_per_language(items: list, n: int | None) -> list:
    """Keep the first ``n`` items of each language (all when ``n`` is None), in order."""
    if n is None:
        return items
    seen: Counter[str] = Counter()
    kept = []
    for item in items:
        seen[item.lang] += 1
        if seen[item.lang] <= n:
            kept.append(item)
    return kept


def gather(cfg: DataArgs) -> tuple[list[Example], list[dict]]:
    """Every configured language's examples, and one report per source read (what it held, what was
    skipped, its content hash)."""
    if cfg.source == "builtin" and not cfg.sources:
        examples = loaders.builtin_examples(cfg.languages)
        origin = {"source": "builtin", "file": str(loaders.BUILTIN / "instructions.jsonl"),
                  "sha256": sha256_file(Path(str(loaders.BUILTIN / "instructions.jsonl")))}  # fmt: skip
        return first_n_per_language(examples, cfg.max_examples_per_language), [origin]
    if cfg.sources:
        missing = [lang for lang in cfg.languages if lang not in cfg.sources]
        if missing:
            raise BabeltuneError(f"data.sources: no source for {', '.join(missing)}")
        # Index-parallel files (the paper's translations): item n has the same id in every language.
        wanted = [(f"data.sources.{lang}", cfg.sources[lang], lang, "item") for lang in cfg.languages]
    else:
        wanted = [("data.source", cfg.source, cfg.source_language, None)]
    examples, reports = [], []
    for where, source, lang, prefix in wanted:
        found, report = loaders.read_source(source, lang, cfg.format, cfg.column_map, cfg.split, prefix,
                                            cfg.max_record_bytes, cfg.on_error, cfg.sharegpt_turns)  # fmt: skip
        examples += found
        local = Path(source).is_file()
        reports.append(
            {"field": where} | report.summary() | ({"sha256": sha256_file(Path(source))} if local else {})
        )
    return first_n_per_language(examples, cfg.max_examples_per_language), reports


def load_examples(cfg: DataArgs) -> list[Example]:
    return gather(cfg)[0]


def run(cfg: DataArgs, out_dir: Path) -> Path:
    """Load the training examples of every configured language into ``out_dir/examples.jsonl``."""
    examples, reports = gather(cfg)
    path = out_dir / EXAMPLES
    write_jsonl(path, (ex.to_dict() for ex in examples))
    write_json(
        out_dir / "data_manifest.json",
        {"sources": reports, "per_language": Counter(e.lang for e in examples)},
    )
    skipped = sum(r.get("skipped", 0) for r in reports)
    if skipped:
        print(
            f"data: skipped {skipped} bad record(s), listed in {out_dir / 'data_manifest.json'}",
            file=sys.stderr,
        )
    return path


def say_test_file_flaws(found: dict, manifest: Path) -> None:
    """Skipped lines, prompts some language lacks and ids that disagree across a joined line: on the
    console (the first few of each), all of them in the manifest."""
    flaws = [
        ("skipped {} bad line(s)", found["skipped_lines"]),
        ("{} prompt(s) missing in some language (left out of that language only)",
         found["prompts_missing_in_some_language"]),
        ("{} line(s) whose ids differ across languages (joined by line; test.align: id joins by id)",
         found["id_mismatches"]),
    ]  # fmt: skip
    for headline, items in flaws:
        if items:
            shown = "".join(f"\n  {item}" for item in items[:5])
            more = f"\n  ... {len(items) - 5} more" if len(items) > 5 else ""
            print(f"test prompts: {headline.format(len(items))}, listed in {manifest}:{shown}{more}",
                  file=sys.stderr)  # fmt: skip


def run_tests(cfg: TestArgs, out_dir: Path) -> Path:
    """Load the test prompts of every test language into ``out_dir/test_prompts.jsonl``."""
    files = cfg.test_files()
    if not files:
        builtin = Path(str(loaders.BUILTIN / "test_prompts.jsonl"))
        manifest: dict = {
            "source": "builtin",
            "files": {"all": {"file": str(builtin), "sha256": sha256_file(builtin)}},
        }
        prompts = loaders.builtin_test_prompts(cfg.languages)
    else:
        prompts, found = loaders.test_prompt_files(files, cfg.align, cfg.on_error, cfg.max_record_bytes)
        manifest = {"source": cfg.source if not cfg.files else "test.files", "files": {
            lang: {"file": str(path), "sha256": sha256_file(path)} for lang, path in files.items()}} | found  # fmt: skip
        say_test_file_flaws(found, out_dir / "test_manifest.json")
    prompts = first_n_per_language(prompts, cfg.max_prompts)
    path = out_dir / TEST_PROMPTS
    write_jsonl(path, (p.to_dict() for p in prompts))
    write_json(out_dir / "test_manifest.json", manifest | {"prompts": Counter(p.lang for p in prompts)})
    return path
