"""Translate stage: source-language examples -> examples in every target language, filtered and measured.

Field by field (instruction, input, output); code blocks, numbers-only text, inline code, URLs and
placeholders never pass through MT. Only unique prose segments are translated, each once per target
language, through a persistent cache.

Writes, in ``out_dir``: ``examples.jsonl`` (source + accepted translations), ``alpaca_<lang>.json``
(Alpaca format per target language), ``rejected.jsonl`` (with reasons), ``failed.jsonl`` (with
reasons), ``translate_report.json`` (per language counts, calls, cache hits, tokens, cost, time,
filter reasons) and, when reference translations exist, ``mt_quality.json`` (chrF and BLEU per pair).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from babeltune.content_cache import ContentCache, cache_key, run_cache
from babeltune.io import read_jsonl, write_json, write_jsonl
from babeltune.langid import TOO_SHORT, LangIdArgs, detect
from babeltune.records import Example
from babeltune.registry import BabeltuneError
from babeltune.tasks import Outcome, Output, Task
from babeltune.translate import filters
from babeltune.translate.backends import BACKENDS, TranslateArgs
from babeltune.translate.protect import mask, split_segments, unmask

FIELDS = ("instruction", "input", "output")
EXAMPLES = "examples.jsonl"
REPORT = "translate_report.json"


@dataclass
class TranslateJob:
    translate: TranslateArgs
    source_language: str
    targets: list[str]
    langid: LangIdArgs | None  # the language ID the filter uses (None: not checked)

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Outcome:
        """Translations are paid for once per run directory: its cache (or ``translate.cache``) is shared."""
        cache = (
            Path(self.translate.cache)
            if self.translate.cache
            else run_cache(out_dir.parents[1], "translations")
        )
        return run(self.translate, inputs["examples"], self.source_language, self.targets, out_dir, cache,
                   self.langid)  # fmt: skip

    def locate(self, folder: Path, part: str) -> Path:
        return folder / EXAMPLES


def task(cfg: TranslateArgs, src: str, targets: list[str], langid: LangIdArgs, examples: Output) -> Task:
    lid = langid if cfg.check_language else None
    return Task("translate", f"{src} -> {', '.join(targets)}", TranslateJob(cfg, src, targets, lid),
                {"examples": examples})  # fmt: skip


@dataclass
class Field:
    """One field cut into pieces: verbatim text, or masked prose to translate."""

    pieces: list[tuple[str, list[str] | None]]  # (text, kept strings) ; kept is None for verbatim

    @classmethod
    def parse(cls, text: str) -> Field:
        pieces = []
        for seg in split_segments(text):
            if seg.translate:
                lead = seg.text[: len(seg.text) - len(seg.text.lstrip())]
                trail = seg.text[len(seg.text.rstrip()) :]
                core, kept = mask(seg.text.strip())
                pieces += [(lead, None), (core, kept), (trail, None)]
            else:
                pieces.append((seg.text, None))
        return cls([(t, k) for t, k in pieces if t])

    def to_translate(self) -> list[str]:
        return [t for t, kept in self.pieces if kept is not None]

    def assemble(self, translations: dict[str, str]) -> tuple[str, int] | None:
        """The translated field and markers lost, or None if a piece has no translation."""
        out, lost = [], 0
        for text, kept in self.pieces:
            if kept is None:
                out.append(text)
            elif text not in translations:
                return None
            else:
                restored, n = unmask(translations[text], kept)
                out.append(restored)
                lost += n
        return "".join(out), lost


@dataclass
class LanguageReport:
    items: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    source_characters: int = 0
    segments: int = 0
    cache_hits: int = 0
    translated_now: int = 0
    seconds_translating: float = 0.0  # in the MT backend: 0 when the cache held everything
    seconds_checking: float = 0.0  # assembling, language ID and filters
    reasons: Counter = field(default_factory=Counter)

    def top_reasons(self, n: int = 3) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:n])


def check(
    cfg: TranslateArgs,
    src: Example,
    fields: dict[str, Field],
    out: dict[str, str],
    detected: str | None,
    tgt: str,
    lost: int,
) -> list[str]:
    """Every filter reason that applies to one translated example. A field with no prose (a code block,
    numbers) was copied, not translated, so it is not held to be untranslated."""
    reasons = []
    for name in FIELDS:
        s, t = getattr(src, name), out[name]
        same = filters.untranslated(s, t) if fields[name].to_translate() else None
        checks = (filters.empty(s, t), same, filters.repetition_loop(t), filters.template_leak(s, t),
                  filters.preamble(s, t))  # fmt: skip
        reasons += [r for r in checks if r]
        if r := filters.length_ratio(s, t, cfg.min_length_ratio, cfg.max_length_ratio):
            reasons.append(r)
    if cfg.check_language and detected is not None and detected != tgt:
        reasons.append(f"language-id:{detected}")
    if lost:
        reasons.append("lost-placeholder")
    return sorted(set(reasons))


def _translate_language(
    cfg: TranslateArgs, backend, cache: ContentCache, parsed, src: str, tgt: str, rep: LanguageReport
):
    """Translate every unique segment not yet cached; returns {segment: translation} and {segment: failure}."""
    unique = list(dict.fromkeys(t for fields in parsed for f in fields.values() for t in f.to_translate()))
    translator = cfg.translator()
    keys = {text: cache_key("translation", *translator, src, tgt, text) for text in unique}
    cached = cache.get_many(list(keys.values()))
    translations = {text: cached[k] for text, k in keys.items() if k in cached}
    rep.segments, rep.cache_hits = len(unique), len(translations)
    todo = [t for t in unique if t not in translations]
    failures: dict[str, str] = {}
    lock = threading.Lock()

    def done(pairs: dict[str, str]) -> None:
        with lock:
            cache.put_many({keys[text]: out for text, out in pairs.items()})
            translations.update(pairs)
            rep.translated_now += len(pairs)
            bar.update(len(pairs))

    def failed(text: str, reason: str) -> None:
        with lock:
            failures[text] = reason
            bar.update(1)

    start = time.perf_counter()
    with tqdm(total=len(todo), desc=f"translate {src}->{tgt}", unit="segment", disable=not todo) as bar:
        if todo:
            backend.translate(todo, src, tgt, done, failed)
    rep.seconds_translating = round(time.perf_counter() - start, 2) if todo else 0.0
    return translations, failures


def run(
    cfg: TranslateArgs,
    examples_path: Path,
    src: str,
    targets: list[str],
    out_dir: Path,
    cache_path: Path,
    langid: LangIdArgs | None = None,
) -> Outcome:
    """Translate the ``src`` examples of ``examples_path`` into ``targets`` (filtered with the ``langid``
    settings); writes ``examples.jsonl`` and the rest. Items with a segment the backend never translated
    are the outcome's failures: the next run asks for exactly those segments."""
    examples = [Example.from_dict(r) for r in read_jsonl(examples_path)]
    source = [e for e in examples if e.lang == src]
    parsed = [{name: Field.parse(getattr(e, name)) for name in FIELDS} for e in source]
    backend = BACKENDS.get(cfg.backend)(cfg)
    cache = ContentCache(cache_path)
    kept, rejected, unfinished, reports = list(source), [], [], {}
    try:
        for tgt in targets:
            rep = reports[tgt] = LanguageReport(items=len(source))
            rep.source_characters = sum(len(getattr(e, f)) for e in source for f in FIELDS)
            translations, failures = _translate_language(cfg, backend, cache, parsed, src, tgt, rep)
            start = time.perf_counter()
            built, failed = assemble(source, parsed, translations, failures, tgt)
            accepted, refused = accept(cfg, built, tgt, langid or LangIdArgs(), rep)
            kept += accepted  # extended in place: a copy per language would copy every item again
            rejected += refused
            unfinished += failed
            rep.failed, rep.rejected, rep.accepted = len(failed), len(refused), len(accepted)
            rep.seconds_checking = round(time.perf_counter() - start, 2)
    finally:
        cache.close()
    references = {(e.source_id, e.lang): e for e in examples if e.lang != src}
    write_outputs(out_dir, cfg, src, kept, rejected, unfinished, reports, backend.usage, references)
    refuse_if_nothing_accepted(src, reports, out_dir)
    return Outcome(failed=[f"{row['source_id']}:{row['lang']}" for row in unfinished])


Built = tuple[Example, dict, dict[str, str], int]  # source, its parsed fields, the translated fields, lost


def assemble(source: list[Example], parsed: list[dict], translations: dict[str, str],
             failures: dict[str, str], tgt: str) -> tuple[list[Built], list[dict]]:  # fmt: skip
    """Each source item's fields put back together from their translated segments; an item with a segment
    never translated is a failed row, with why."""
    built, failed = [], []
    for ex, fields in zip(source, parsed, strict=True):
        pieces = {name: f.assemble(translations) for name, f in fields.items()}
        if any(p is None for p in pieces.values()):
            why = {failures.get(t, "not translated") for f in fields.values() for t in f.to_translate()
                   if t not in translations}  # fmt: skip
            failed.append({"source_id": ex.source_id, "lang": tgt, "reasons": sorted(why)})
            continue
        built.append((ex, fields, {n: p[0] for n, p in pieces.items()}, sum(p[1] for p in pieces.values())))
    return built, failed


def accept(cfg: TranslateArgs, built: list[Built], tgt: str, langid: LangIdArgs,
           rep: LanguageReport) -> tuple[list[Example], list[dict]]:  # fmt: skip
    """The translations that pass the quality filters, and the rejected ones with their reasons."""
    detected = detect([f"{out['instruction']} {out['output']}" for _, _, out, _ in built], langid)
    accepted, rejected = [], []
    for (ex, fields, out, lost), det in zip(built, detected, strict=True):
        new = Example(
            f"{ex.source_id}:{tgt}", ex.source_id, tgt, out["instruction"], out["input"], out["output"]
        )
        reasons = check(cfg, ex, fields, out, det.lang if det.lang != TOO_SHORT else None, tgt, lost)
        if reasons:
            rejected.append(new.to_dict() | {"reasons": reasons})
            rep.reasons.update(reasons)
        else:
            accepted.append(new)
    return accepted, rejected


def write_outputs(out_dir: Path, cfg: TranslateArgs, src: str, kept: list[Example], rejected: list[dict],
                  failed: list[dict], reports: dict[str, LanguageReport], usage, references: dict) -> None:  # fmt: skip
    """The translated examples (one JSONL, and an Alpaca file per language), the rejected and failed items,
    the report, and the translations' chrF against human-written versions where the data has them."""
    write_jsonl(out_dir / EXAMPLES, (e.to_dict() for e in kept))
    write_jsonl(out_dir / "rejected.jsonl", rejected)
    write_jsonl(out_dir / "failed.jsonl", failed)
    for tgt in reports:
        write_json(
            out_dir / f"alpaca_{tgt}.json",
            [{f: getattr(e, f) for f in FIELDS} for e in kept if e.lang == tgt],
        )
    write_json(out_dir / REPORT, {
        "backend": cfg.backend, "model": cfg.model, "source_language": src,
        "usage": usage.as_dict() | {"cost": cfg.cost(usage)},
        "languages": {t: dict(vars(r)) for t, r in reports.items()},
        "warnings": acceptance_warnings(cfg, src, reports, out_dir),
    })  # fmt: skip
    quality = mt_quality(kept + [Example.from_dict(r) for r in rejected], references)  # filters aside
    if quality:
        write_json(out_dir / "mt_quality.json", quality)


def acceptance_warnings(cfg: TranslateArgs, src: str, reports: dict[str, LanguageReport], out_dir: Path):
    """A line for each language whose filters accepted less than ``min_acceptance`` of its items; said on
    the console now, and kept in the report file for the experiment's report."""
    lines = []
    for tgt, rep in reports.items():
        if rep.items and rep.accepted < cfg.min_acceptance * rep.items:
            lines.append(
                f"translate {src} -> {tgt}: {rep.accepted} of {rep.items} items accepted "
                f"({rep.accepted / rep.items:.0%}, under translate.min_acceptance {cfg.min_acceptance:.0%}); "
                f"top reasons: {rep.top_reasons() or 'failed translations'}"
            )
    for line in lines:
        print(f"warning: {line}; see {out_dir / 'rejected.jsonl'}", file=sys.stderr)
    return lines


def refuse_if_nothing_accepted(src: str, reports: dict[str, LanguageReport], out_dir: Path) -> None:
    """Every translation of a language rejected: the mixtures would lack it, so stop here and say why
    (what was written stays, and the cache makes the rerun free)."""
    for tgt, rep in reports.items():
        if rep.rejected and not rep.accepted:
            raise BabeltuneError(
                f"translate {src} -> {tgt}: none of {rep.items} translations passed the filters "
                f"({rep.top_reasons()}); the rejected ones and their reasons are in {out_dir / 'rejected.jsonl'}"
            )


def mt_quality(translated: list[Example], references: dict[tuple[str, str], Example]) -> dict:
    """Corpus chrF and BLEU per language pair against reference translations of the same items."""
    from sacrebleu.metrics import BLEU, CHRF

    by_lang: dict[str, tuple[list[str], list[str]]] = {}
    for ex in translated:
        ref = references.get((ex.source_id, ex.lang))
        if ref is None:
            continue
        hyps, refs = by_lang.setdefault(ex.lang, ([], []))
        for name in FIELDS:
            if getattr(ref, name):
                hyps.append(getattr(ex, name))
                refs.append(getattr(ref, name))
    out = {}
    for lang, (hyps, refs) in by_lang.items():
        tokenize = "zh" if lang == "zh" else "13a"
        out[lang] = {
            "segments": len(hyps),
            "chrF": round(CHRF().corpus_score(hyps, [refs]).score, 2),
            "BLEU": round(BLEU(tokenize=tokenize).corpus_score(hyps, [refs]).score, 2),
        }
    return out


def print_summary(out_dir: Path) -> None:
    """Per-language counts of a translate task: what was kept, filtered, failed, cached, and at what cost."""
    from rich.console import Console
    from rich.table import Table

    from babeltune.io import read_json

    report = read_json(out_dir / REPORT)
    quality = read_json(out_dir / "mt_quality.json") if (out_dir / "mt_quality.json").exists() else {}
    table = Table(
        title=f"translation {report['source_language']} -> ... with {report['backend']}:{report['model']}"
    )
    columns = [
        "items",
        "accepted",
        "rejected",
        "failed",
        "segments",
        "cache_hits",
        "translated_now",
        "seconds_translating",
        "seconds_checking",
    ]
    for col in ["language", *columns, "chrF", "top rejection reasons"]:
        table.add_column(col)
    for lang, rep in report["languages"].items():
        reasons = LanguageReport(reasons=Counter(rep["reasons"])).top_reasons()
        chrf = str(quality[lang]["chrF"]) if lang in quality else "–"
        table.add_row(lang, *(str(rep[c]) for c in columns), chrf, reasons or "–")
    console = Console(width=max(Console().width, 160))  # a wide table is easier to read than a wrapped one
    console.print(table)
    usage = report["usage"]
    console.print(
        f"calls {usage['calls']}, retries {usage['retries']}, tokens {usage['input_tokens']} in / "
        f"{usage['output_tokens']} out, cost {usage['cost']}; files in {out_dir}"
    )
