"""Language-ID accuracy on the team's labelled set (tests/assets/langid): exact language, strict policy, each
backend with its default settings, per language and overall, for whole answers and for one-sentence ones.

The default backend must reach 99 % overall and 96 % in every language (tests/test_langid.py holds that).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from report import bench_parser

from babeltune.langid import LID_BACKENDS, LangIdArgs, detect

ASSETS = Path(__file__).resolve().parents[1] / "tests" / "assets" / "langid"


def labelled(kinds: tuple[str, ...] = ("answer", "short")) -> list[tuple[str, str, str]]:
    """(language, kind, text) of every item of the labelled set."""
    return [
        (path.stem, row["kind"], row["text"])
        for path in sorted(ASSETS.glob("*.jsonl"))
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        if row["kind"] in kinds
    ]


def accuracy(backend: str, items: list[tuple[str, str, str]]) -> tuple[dict, float]:
    """Share of items detected as exactly their language, by (language, kind), and seconds per item."""
    cfg = LangIdArgs(backend=backend)
    detect(["warm up the model: load it before the clock starts"], cfg)
    start = time.perf_counter()
    found = detect([text for _, _, text in items], cfg)
    seconds = (time.perf_counter() - start) / len(items)
    hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for (lang, kind, _), d in zip(items, found, strict=True):
        hits[lang, kind].append(d.lang == lang)
    return hits, seconds


def main() -> None:
    parser = bench_parser(__doc__, repeats=1)
    parser.add_argument("--backends", nargs="+", default=LID_BACKENDS.names())
    args = parser.parse_args()
    items = labelled()
    langs = sorted({lang for lang, _, _ in items})
    results = {b: accuracy(b, items) for b in args.backends}
    print(
        f"language ID: {len(items)} labelled texts in {len(langs)} languages (tests/assets/langid), strict policy"
    )
    print("  " + "backend".ljust(12) + "".join(f"{lang:>7}" for lang in langs) + "    all  short  us/text")
    for backend, (hits, seconds) in results.items():
        per_lang = [sum(h for k in ("answer", "short") for h in hits[lang, k]) / sum(len(hits[lang, k]) for k in ("answer", "short")) for lang in langs]  # fmt: skip
        every = [h for v in hits.values() for h in v]
        short = [h for (_, kind), v in hits.items() if kind == "short" for h in v]
        row = "".join(f"{100 * a:6.1f}%" for a in per_lang)
        print(f"  {backend:<12}{row} {100 * sum(every) / len(every):5.1f}% {100 * sum(short) / len(short):5.1f}% "
              f"{seconds * 1e6:7.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
