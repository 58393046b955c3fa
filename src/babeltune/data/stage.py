"""Data stage: write ``examples.jsonl`` (training data) and ``test_prompts.jsonl`` (test set)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from babeltune.config import DataArgs, TestArgs
from babeltune.data import loaders
from babeltune.data.schema import Example
from babeltune.io import write_json, write_jsonl
from babeltune.registry import BabeltuneError


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


def load_examples(cfg: DataArgs) -> list[Example]:
    if cfg.sources:
        missing = [lang for lang in cfg.languages if lang not in cfg.sources]
        if missing:
            raise BabeltuneError(f"data.sources: no source for {', '.join(missing)}")
        # Index-parallel files (the paper's translations): item n has the same id in every language.
        return first_n_per_language(
            [
                ex
                for lang in cfg.languages
                for ex in loaders.examples_from_source(
                    cfg.sources[lang], lang, cfg.format, cfg.column_map, cfg.split, "item"
                )
            ],
            cfg.max_examples_per_language,
        )
    if cfg.source == "builtin":
        examples = loaders.builtin_examples(cfg.languages)
    else:
        examples = loaders.examples_from_source(
            cfg.source, cfg.source_language, cfg.format, cfg.column_map, cfg.split
        )
    return first_n_per_language(examples, cfg.max_examples_per_language)


def run(cfg: DataArgs, out_dir: Path) -> Path:
    """Load the training examples of every configured language into ``out_dir/examples.jsonl``."""
    examples = load_examples(cfg)
    path = out_dir / "examples.jsonl"
    write_jsonl(path, (ex.to_dict() for ex in examples))
    write_json(
        out_dir / "data_manifest.json",
        {"source": cfg.source, "per_language": Counter(e.lang for e in examples)},
    )
    return path


def run_tests(cfg: TestArgs, out_dir: Path) -> Path:
    """Load the test prompts of every test language into ``out_dir/test_prompts.jsonl``."""
    manifest: dict = {"source": cfg.source}
    if cfg.source == "builtin" and not cfg.files:
        prompts = loaders.builtin_test_prompts(cfg.languages)
    else:
        files = {
            lang: Path(cfg.files.get(lang) or Path(cfg.source) / f"test_{lang}.jsonl")
            for lang in cfg.languages
        }
        prompts, found = loaders.test_prompt_files(files, cfg.align, cfg.on_error)
        manifest |= found
    prompts = first_n_per_language(prompts, cfg.max_prompts)
    path = out_dir / "test_prompts.jsonl"
    write_jsonl(path, (p.to_dict() for p in prompts))
    write_json(out_dir / "test_manifest.json", manifest | {"prompts": Counter(p.lang for p in prompts)})
    return path
