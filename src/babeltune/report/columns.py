"""The per-run-and-language numbers, declared once: each column's label, its format, and where else it
shows (a per-language figure, a console table). The HTML table, ``summary.md``, the figures and the console
are made from this list, so a new number is one entry here (and its field on ``aggregate.Cell``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str  # the aggregate.Cell field
    label: str
    share: bool = False  # a share of answers: shown as a percentage everywhere
    figure: str | None = None  # file name of its per-language bars (None: not drawn)
    axis: str = ""  # the bars' y label
    console: str | None = None  # title of its console table (None: not printed there)
    decimals: int = 2  # on the console
    ci: str | None = None  # the Cell field of its 95 % interval: error bars on its figure
    needs: str = ""  # why it can be empty in a whole report (it is then left out, with this said)
    evidence: bool = False  # a value here (a count above 0) shows that what ``needs`` names is there
    quiet: bool = False  # left out without a word (what it needs is an option few grids take)


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
           ci="consistency_ci"),
    Column("consistency_ci", "95% CI", share=True),
    Column("seed_range", "fidelity over seeds (min-max)", share=True, needs=SEEDS, evidence=True, quiet=True),
    Column("verdicts", "verdicts"),
    Column("chrf", "chrF", figure="chrf", axis="chrF vs reference", console="chrF against the reference answer",
           decimals=1, needs=REFERENCES, evidence=True),
    Column("judged", "judged", needs=JUDGE, evidence=True),
    Column("unparsable", "unparsable", needs=JUDGE, evidence=True),
    Column("unjudged", "ok, unjudged", needs=JUDGE),
    Column("score_sum", "score sum (judge x ok)", needs=JUDGE),
    Column("score_mean", "mean score", figure="score", axis="mean score (judge x match)",
           console="mean score (judge x language match)", ci="score_ci", needs=JUDGE),
    Column("score_n", "over", needs=JUDGE),
    Column("score_ci", "95% CI", needs=JUDGE),
    Column("judge_mean", "mean judge before the check", needs=JUDGE),
    Column("robustness", "robustness (before - after)", figure="robustness",
           axis="robustness: judge score lost to the language check", needs=JUDGE),
]  # fmt: skip


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
