"""The per-run-and-language numbers, declared once. A metric is one entry: its value for one scored answer,
how a run's answers in one language make one number, its label and format, whether higher is better, and
where else it shows (a per-language figure, a console table). The cells (``aggregate.cell``), the HTML table,
``summary.md``, ``summary.csv``, the figures and the console are all made from this list."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from babeltune.records import Score


def average(values: list[float]) -> float | None:
    """The mean to three decimals; None over no answers (``fsum``: exact like ``statistics.mean``, 7x faster).

    >>> average([0.1] * 10), average([])
    (0.1, None)
    """
    return round(math.fsum(values) / len(values), 3) if values else None


def total(values: list[float]) -> float | None:
    return sum(values) if values else None


@dataclass(frozen=True)
class Column:
    key: str  # the value's name: a Cell field, or a metric's key in ``Cell.values``
    label: str
    share: bool = False  # a share of answers: shown as a percentage everywhere
    figure: str | None = None  # file name of its per-language bars (None: not drawn)
    axis: str = ""  # the bars' y label
    console: str | None = None  # title of its console table (None: not printed there)
    decimals: int = 2  # on the console
    ci: str | None = None  # the key of its 95 % interval (bootstrap over its answers' values): error bars
    needs: str = ""  # why it can be empty in a whole report (it is then left out, with this said)
    evidence: bool = False  # a value here (a count above 0) shows that what ``needs`` names is there
    quiet: bool = False  # left out without a word (what it needs is an option few grids take)
    per_row: Callable[[Score], float | None] | None = None  # a metric: one answer's value (None: it has none)
    aggregate: Callable[[list[float]], float | None] = average  # the answers' values -> the cell's value
    higher_is_better: bool | None = None  # the best run of a language is marked (None: no better side)


def counts(test: Callable[[Score], bool]) -> Callable[[Score], float | None]:
    """A per-row value that counts the answers passing ``test`` (aggregate with ``len``)."""
    return lambda r: 1.0 if test(r) else None


JUDGE = "the LLM judge was disabled or judged no answer"
REFERENCES = "no test prompt has a reference answer"
SEEDS = "the grid trains one seed per grid point"

COLUMNS = [
    Column("run", "run"),
    Column("lang", "language"),
    Column("n", "answers"),
    Column("consistency", "fidelity (share ok)", share=True, figure="consistency",
           axis="fidelity (share of answers ok)",
           console="fidelity (% of answers that are real answers in the prompt's language)", decimals=0,
           ci="consistency_ci", per_row=lambda r: float(r.verdict == "ok"), higher_is_better=True),
    Column("consistency_ci", "95% CI", share=True),
    Column("seed_range", "fidelity over seeds (min-max)", share=True, needs=SEEDS, evidence=True, quiet=True),
    Column("verdicts", "verdicts"),
    Column("chrf", "chrF", figure="chrf", axis="chrF vs reference", console="chrF against the reference answer",
           decimals=1, needs=REFERENCES, evidence=True, per_row=lambda r: r.chrf, higher_is_better=True),
    Column("judged", "judged", needs=JUDGE, evidence=True, per_row=counts(lambda r: r.judge_raw is not None),
           aggregate=len),
    Column("unparsable", "unparsable", needs=JUDGE, evidence=True, aggregate=len,
           per_row=counts(lambda r: r.judge_raw is not None and r.judge_score is None)),
    Column("unjudged", "ok, unjudged", needs=JUDGE, aggregate=len,
           per_row=counts(lambda r: r.verdict == "ok" and r.final_score is None)),
    Column("score_sum", "score sum (judge x ok)", needs=JUDGE, per_row=lambda r: r.final_score, aggregate=total),
    Column("score_mean", "mean score", figure="score", axis="mean score (judge x match)",
           console="mean score (judge x language match)", ci="score_ci", needs=JUDGE,
           per_row=lambda r: r.final_score, higher_is_better=True),
    Column("score_n", "over", needs=JUDGE, per_row=lambda r: r.final_score, aggregate=len),
    Column("score_ci", "95% CI", needs=JUDGE),
    Column("judge_mean", "mean judge before the check", needs=JUDGE, per_row=lambda r: r.judge_score),
    Column("robustness", "robustness (before - after)", figure="robustness",
           axis="robustness: judge score lost to the language check", needs=JUDGE, higher_is_better=False,
           per_row=lambda r: None if r.final_score is None or r.judge_score is None else r.judge_score - r.final_score),
]  # fmt: skip
METRICS = [c for c in COLUMNS if c.per_row]  # the columns computed from each answer's score


def per_answer(key: str) -> Callable[[Score], float | None]:
    """A metric's value for one answer, as a float (the finding pairs and resamples these)."""
    per_row = next(c.per_row for c in METRICS if c.key == key)
    return lambda r: None if (v := per_row(r)) is None else float(v)


def with_data(cells: list) -> tuple[list[Column], list[str]]:
    """The columns whose data is there, and one line for each reason others were left out. The columns
    that need one thing (a judge, references) go together: kept when one of their evidence columns has a
    value in some cell (a count: above 0), so no judge means no "judged 0" column either.

    >>> from types import SimpleNamespace as Row
    >>> cols, why = with_data([Row(**{c.key: (0 if c.key == "judged" else None) if c.needs else 1 for c in COLUMNS})])
    >>> [c.key for c in cols], why[0][:32], len(why)
    (['run', 'lang', 'n', 'consistency', 'consistency_ci', 'verdicts'], 'Left out: chrF, as no test promp', 2)
    """
    present = {
        col.needs for col in COLUMNS if col.evidence and any(_shows(getattr(cell, col.key)) for cell in cells)
    }
    kept = [c for c in COLUMNS if not c.needs or c.needs in present]
    gone: dict[str, list[str]] = {}
    for col in COLUMNS:
        if col not in kept and not col.quiet:
            gone.setdefault(col.needs, []).append(col.label)
    return kept, [f"Left out: {', '.join(labels)}, as {why}." for why, labels in gone.items()]


def _shows(value: object) -> bool:
    return value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value == 0)
