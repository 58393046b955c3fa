"""How well a judge agrees with people: item-level and system-level Pearson and Spearman, per language.

The paper validates its judge with system-level Pearson correlations of 0.87-0.97 against human ratings.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

from babeltune.evaluate.metrics import pearson, spearman
from babeltune.records import Score
from babeltune.registry import BabeltuneError


def read_human_scores(path: Path) -> list[dict]:
    """CSV or JSONL with ``id`` (the response id, e.g. ``test-01:es``), ``run`` and ``score``."""
    path = Path(path)
    if not path.exists():
        raise BabeltuneError(f"{path}: no such file")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        start = 2
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        start = 1
    for n, row in enumerate(rows, start):
        missing = [k for k in ("id", "run", "score") if row.get(k) in (None, "")]
        if missing:
            raise BabeltuneError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
        try:
            row["score"] = float(row["score"])
        except ValueError:
            raise BabeltuneError(f"{path}:{n}: score {row['score']!r} is not a number") from None
    return rows


def agreement(judge_rows: list[Score], human_rows: list[dict]) -> dict:
    """Correlations over responses scored by both (item level) and over runs' mean scores (system level).
    A human score's id may be babeltune's (``test-01:es``, ``line-0013:es``) or the one the prompt's own
    test file gave it (the paper's ids)."""
    human = {(r["run"], r["id"]): r["score"] for r in human_rows}
    pairs_by_lang: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for r in judge_rows:
        key = next((k for k in ((r.run, r.id), (r.run, r.file_id)) if k in human), None)
        if key is not None and r.judge_score is not None:
            pairs_by_lang[r.lang].append((r.run, float(r.judge_score), human[key]))
    out = {}
    for lang, pairs in sorted(pairs_by_lang.items()):
        by_run: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for run, j, h in pairs:
            by_run[run].append((j, h))
        sys_j = [mean(j for j, _ in v) for v in by_run.values()]
        sys_h = [mean(h for _, h in v) for v in by_run.values()]
        out[lang] = {
            "items": len(pairs),
            "systems": len(by_run),
            "item_pearson": pearson([p[1] for p in pairs], [p[2] for p in pairs]),
            "item_spearman": spearman([p[1] for p in pairs], [p[2] for p in pairs]),
            "system_pearson": pearson(sys_j, sys_h),
            "system_spearman": spearman(sys_j, sys_h),
        }
    if not out:
        raise BabeltuneError(
            "judge-agreement: no response has both a judge score and a human score (match on run and id)"
        )
    return {"per_language": out}


def print_agreement(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="judge vs human scores")
    cols = ["items", "systems", "item_pearson", "item_spearman", "system_pearson", "system_spearman"]
    for col in ["language", *cols]:
        table.add_column(col)
    for lang, row in result["per_language"].items():
        table.add_row(lang, *(str(row[c]) for c in cols))
    Console(width=120).print(table)
