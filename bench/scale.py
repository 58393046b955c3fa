"""Benchmark: how each stage's cost grows with its input, up to the paper grid's real sizes.

Synthesises the paper's data (9 languages x 51,760 Alpaca-format records, indented JSON arrays), a
translation cache of 1.2 M segments (51,760 x 8 languages x 3 fields) and the paper's grid (336 runs), and
times, at 1/8, 1/4, 1/2 and the full size, each in a fresh process (so peak memory is its own):
- data: reading the 9 JSON arrays (the data stage's loader, line numbers kept);
- mix: the mix stage on 9 x N examples, tokens counted with the embedded model's tokenizer;
- cache: opening the run-level cache and looking up every one of its segments;
- plan: `babeltune plan configs/paper.yaml` with data.size_hint=N (grid, mixture sizes, GPU hours, script);
- report: the report stage over the evaluate stage's files of R runs (the paper grid's 336 at full size: 14
  models x 2 methods x 12 regimes, 8 test languages x 50 prompts each), then report.html opened in headless
  Chromium (`html` row: seconds until the page's scripts have run).
It prints seconds, the growth ratio per doubling (2.0 is linear, 4.0 quadratic) and peak memory.

    python bench/scale.py [--fractions 8,4,2,1] [--full 51760]
"""

from __future__ import annotations

import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import bench_parser

LANGS = ["en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh"]
REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]


def alpaca(n: int, lang: str, path: Path) -> None:
    rng = random.Random(f"{lang}{n}")
    rows = [{"instruction": f"{lang} {i}: " + " ".join(rng.choices(WORDS, k=rng.randint(6, 20))),
             "input": "" if i % 3 else " ".join(rng.choices(WORDS, k=12)),
             "output": " ".join(rng.choices(WORDS, k=rng.randint(20, 120)))} for i in range(n)]  # fmt: skip
    path.write_text(json.dumps(rows, indent=4), encoding="utf-8")


REGIMES = ["english-only", "multilingual", "multilingual-downsampled"] + [f"mono-{lang}" for lang in LANGS]
TEST_LANGS = ["en", "es", "fr", "bg", "ru", "zh", "bn", "no"]


def evaluated_runs(runs: int, folder: Path) -> list:
    """The files the report reads for ``runs`` grid points: scores, responses, evaluation, manifest, metrics."""
    from babeltune.io import write_json, write_jsonl
    from babeltune.report.stage import RunResult

    results = []
    for i in range(runs):
        model, method, regime = f"model{i // 24}", ("lora", "full")[i // 12 % 2], REGIMES[i % 12]
        name = f"{model}/{method}/{regime}"
        rng, d = random.Random(name), folder / f"run{i:04d}"
        d.mkdir(parents=True)
        rows = []
        for lang in TEST_LANGS:
            for p in range(50):
                ok = rng.random() < 0.6
                answer = " ".join(rng.choices(WORDS, k=rng.randint(20, 200)))
                judge = rng.choice([1, 2, 3])
                rows.append({"id": f"p{p}:{lang}", "source_id": f"p{p}", "file_id": None, "lang": lang, "run": name,
                             "response": answer, "detected_lang": lang if ok else "en",
                             "verdict": "ok" if ok else "wrong-language", "lang_match": ok, "judge_score": judge,
                             "judge_raw": f"Rating: [[{judge}]]", "judge_error": None,
                             "final_score": judge if ok else 0, "chrf": round(rng.random() * 60, 2),
                             "prompt": f"prompt {p} in {lang}"})  # fmt: skip
        write_jsonl(d / "scores.jsonl", rows)
        languages = LANGS if not regime.startswith("mono-") else [regime[5:]]
        manifest = {
            "examples": 51_760,
            "languages": languages,
            "cost_in_C": 1.0,
            "per_language": {lang: 51_760 // len(languages) for lang in languages},
        }
        write_json(
            d / "evaluation.json",
            {
                "judge": {"pipeline_check_only": False, "prompt": "paper-1to3", "model": "gpt-3.5-turbo"},
                "upstream": {
                    "mixture": manifest,
                    "training": {"parameters": 10**8 * (1 + i // 24), "seconds": 3600.0},
                },
            },
        )
        regime_name = regime if not regime.startswith("mono-") else "monolingual"
        results.append(RunResult(name, regime_name, d / "scores.jsonl", model, method))
    return results


def report_stage(runs: int, folder: Path) -> float:
    from babeltune.config import ReportArgs
    from babeltune.report.stage import run

    results = evaluated_runs(runs, folder / "runs")
    start = time.perf_counter()
    run(ReportArgs(title="scale"), results, set(LANGS), "name: scale\n", folder / "report", TEST_LANGS)
    return time.perf_counter() - start


def html_load(runs: int, folder: Path) -> float:
    """Seconds headless Chromium takes to load report.html and run its scripts (includes the browser's start)."""
    import shutil

    report_stage(runs, folder)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={folder / 'profile'}", "--dump-dom"]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run([chromium, *flags, (folder / "report" / "report.html").as_uri()], capture_output=True,
                         text=True, timeout=300, check=True)  # fmt: skip
    assert "answers" in out.stdout
    return time.perf_counter() - start


def one(stage: str, n: int, folder: Path) -> float:
    """Time one stage at size n (in this process); the files it reads are made before the clock starts."""
    from babeltune.content_cache import ContentCache, cache_key, encode
    from babeltune.data.loaders import read_source

    files = {lang: folder / f"alpaca_{lang}.json" for lang in LANGS}
    if stage in ("data", "mix") and not all(p.exists() for p in files.values()):
        for lang, path in files.items():
            alpaca(n, lang, path)
    if stage == "cache":
        shard = folder / "cache" / "segments.jsonl"
        keys = [
            cache_key("mt", lang, field, i)
            for lang in LANGS[1:]
            for field in ("i", "n", "o")
            for i in range(n)
        ]
        if not shard.exists():
            shard.parent.mkdir(parents=True, exist_ok=True)
            with open(shard, "w", encoding="utf-8") as fh:
                fh.writelines(encode(k, f"translated segment {j}") for j, k in enumerate(keys))
        start = time.perf_counter()
        found = ContentCache(shard.parent).get_many(keys)
        assert len(found) == len(keys)
        return time.perf_counter() - start
    if stage == "report":
        return report_stage(n, folder)
    if stage == "html":
        return html_load(n, folder)
    if stage == "plan":
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "babeltune", "plan", "configs/paper.yaml", f"--data.size_hint={n}",
                        f"--output_dir={folder / 'run'}", "--slurm", str(folder / "paper.sh")],
                       cwd=REPO, check=True, capture_output=True)  # fmt: skip
        return time.perf_counter() - start
    start = time.perf_counter()
    examples = [ex for lang, path in files.items() for ex in read_source(str(path), lang)[0]]
    if stage == "data":
        assert len(examples) == 9 * n
        return time.perf_counter() - start
    from babeltune import mix
    from babeltune.config import MixArgs
    from babeltune.io import write_jsonl

    source = folder / "examples.jsonl"
    write_jsonl(source, (ex.to_dict() for ex in examples))
    start = time.perf_counter()
    mix.run(MixArgs(monolingual_languages=LANGS), source, LANGS, folder / "mix", "builtin:smollm2-135m")
    return time.perf_counter() - start


def measure(stage: str, n: int, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", stage, str(n), str(folder)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--fractions", default="8,4,2,1", help="sizes as divisors of the full size")
    parser.add_argument("--full", type=int, default=51_760, help="records per language at full size")
    parser.add_argument("--runs", type=int, default=336, help="grid points of the report at full size")
    parser.add_argument("--more-runs", type=int, default=1008, help="one more report size (0: none)")
    parser.add_argument("--stages", default="data,mix,cache,plan,report,html")
    parser.add_argument("--one", nargs=3, help=argparse_hidden())
    args = parser.parse_args()
    if args.one:
        stage, n, folder = args.one
        seconds = one(stage, int(n), Path(folder))
        peak = (
            max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
            / 1e6
        )
        print(json.dumps({"seconds": round(seconds, 2), "peak_gb": round(peak, 2)}))
        return
    fractions = [int(f) for f in args.fractions.split(",")]
    print(f"records per language: {[args.full // f for f in fractions]} (9 languages; cache: 24 segments per "
          f"record); runs (report, html): {[args.runs // f for f in fractions] + [args.more_runs]}")  # fmt: skip
    print("growth: time ratio per doubling of the input (2.0 is linear, 4.0 quadratic)")
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages.split(","):
            sizes = [args.full // f for f in fractions]
            if stage in ("report", "html"):
                sizes = [args.runs // f for f in fractions] + ([args.more_runs] if args.more_runs else [])
            rows = []
            for n in sizes:
                folder = Path(tmp) / f"{stage}-{n}"
                folder.mkdir()
                rows.append(measure(stage, n, folder))
            secs = [r["seconds"] for r in rows]
            growth = [
                round((b / a) ** (math.log(2) / math.log(m / n)), 2) if a > 0 else float("nan")
                for a, b, n, m in zip(secs, secs[1:], sizes, sizes[1:], strict=False)
            ]
            print(f"{stage:<6} " + " ".join(f"{n:>7}: {s:.2f}s" for n, s in zip(sizes, secs, strict=True))
                  + f"   growth {', '.join(map(str, growth))}   peak {max(r['peak_gb'] for r in rows):.2f} GB")  # fmt: skip


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
