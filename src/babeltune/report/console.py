"""The report on the console: the numbers ``summary.csv`` holds, one small table per metric."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from babeltune.report.columns import COLUMNS
from babeltune.report.stage import REPORT, SUMMARY


def _number(value: float, share: bool, decimals: int) -> str:
    """
    >>> _number(0.456, True, 0), _number(2.3456, False, 2)
    ('46', '2.35')
    """
    return f"{100 * value if share else value:.{decimals}f}"


def print_summary(report_dir: Path, seconds: float) -> None:
    """Runs as rows, languages as columns (unseen ones starred), as the report wrote them."""
    from rich.console import Console
    from rich.table import Table

    with open(report_dir / SUMMARY, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    runs = list(dict.fromkeys(r["run"] for r in rows))
    langs = list(dict.fromkeys(r["lang"] for r in rows))
    seen = {r["lang"]: r["seen"] == "True" for r in rows}
    by = {(r["run"], r["lang"]): r for r in rows}
    needed = max((len(run) for run in runs), default=0) + 8 * len(langs) + 8
    console = Console(width=max(Console().width, needed))  # never truncate run names in a log file
    for col in (c for c in COLUMNS if c.console):
        table = Table(title=col.console, title_justify="left")
        table.add_column("run")
        for lang in langs:
            table.add_column(lang if seen[lang] else f"{lang}*", justify="right")
        for run in runs:
            values = [by[run, lang][col.key] if (run, lang) in by else "" for lang in langs]
            table.add_row(
                run, *("–" if v == "" else _number(float(v), col.share, col.decimals) for v in values)
            )
        console.print(table)
    console.print("* unseen in training")
    finding = report_dir / "finding.json"
    if finding.exists():
        for sentence in json.loads(finding.read_text(encoding="utf-8"))["sentences"]:
            console.print(f"- {sentence}")
    console.print(f"done in {seconds:.0f} s; report: {report_dir / REPORT}")
