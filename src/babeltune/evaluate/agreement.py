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
from babeltune.io import regular_file
from babeltune.records import Score
from babeltune.registry import BabeltuneError

HUMAN_MAX_BYTES = 200_000_000  # a million scored answers are a tenth of this


def read_human_scores(path: Path) -> list[dict]:
    """CSV or JSONL with ``id`` (the response id, e.g. ``test-01:es``, or the test file's own id), ``run``,
    ``score`` and, where the id does not name the language, ``lang``."""
    path = regular_file(Path(path), "human scores file", max_bytes=HUMAN_MAX_BYTES)
    try:
        if path.suffix == ".csv":
            rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
            start = 2
        else:
            rows = [
                json.loads(line) for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()
            ]
            start = 1
    except UnicodeDecodeError as err:
        raise BabeltuneError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise BabeltuneError(
            f"{path}: invalid JSON on a line: {err.msg} (a CSV file needs the .csv suffix)"
        ) from None
    except csv.Error as err:
        raise BabeltuneError(f"{path}: not a CSV file: {err}") from None
    for n, row in enumerate(rows, start):
        if not isinstance(row, dict):
            raise BabeltuneError(f"{path}:{n}: a row is an object with id, run and score")
        missing = [k for k in ("id", "run", "score") if row.get(k) in (None, "")]
        if missing:
            raise BabeltuneError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
        try:
            row["score"] = float(row["score"])
        except ValueError:
            raise BabeltuneError(f"{path}:{n}: score {row['score']!r} is not a number") from None
    return rows


def join(judge_rows: list[Score], human_rows: list[dict]) -> dict[str, list[tuple[str, float, float]]]:
    """language -> (run, judge score, human score) for every human score, matched on its run, its id and its
    language. The id is babeltune's (``test-01:es``: it names the language) or the one the test file gave
    the prompt; the paper's files give every language the same id, so such a row needs a ``lang`` column.
    A human score that matches no response, or several, is an error that lists them: never a silent join."""
    by_key: dict[tuple, list[Score]] = defaultdict(list)
    for r in judge_rows:
        for key in {(r.run, r.id, r.lang), (r.run, r.id, None)} | (
            {(r.run, r.file_id, r.lang), (r.run, r.file_id, None)} if r.file_id else set()
        ):
            by_key[key].append(r)
    pairs: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    unmatched, ambiguous = [], []
    for n, h in enumerate(human_rows, 1):
        found = {id(r): r for r in by_key.get((h["run"], h["id"], h.get("lang") or None), [])}
        if not found:
            unmatched.append(f"{n} ({h['run']}, {h['id']}{', ' + h['lang'] if h.get('lang') else ''})")
        elif len(found) > 1:
            langs = sorted({r.lang for r in found.values()})
            ambiguous.append(f"{n} ({h['run']}, {h['id']}: one id in {', '.join(langs)})")
        else:
            (r,) = found.values()
            if r.judge_score is not None:
                pairs[r.lang].append((r.run, float(r.judge_score), h["score"]))
    if ambiguous:
        raise BabeltuneError(f"judge-agreement: {len(ambiguous)} human score(s) match responses in several "
                             f"languages; add a lang column: row {'; row '.join(ambiguous[:5])}")  # fmt: skip
    if unmatched:
        raise BabeltuneError(f"judge-agreement: {len(unmatched)} human score(s) match no response of these "
                             f"scores (run, id, lang): row {'; row '.join(unmatched[:5])}")  # fmt: skip
    return pairs


def agreement(judge_rows: list[Score], human_rows: list[dict]) -> dict:
    """Correlations over responses scored by both (item level) and over runs' mean scores (system level),
    per language (see ``join``)."""
    pairs_by_lang = join(judge_rows, human_rows)
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
    console = Console(width=120)
    console.print(table)
    if any(row[c] is None for row in result["per_language"].values() for c in cols):
        console.print("None: no correlation is defined there (fewer than 3 items or runs, or one side's scores "
                      "are all equal)")  # fmt: skip
