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


COLUMNS = [
    Column("run", "run"),
    Column("lang", "language"),
    Column("n", "answers"),
    Column("consistency", "fidelity (share ok)", share=True, figure="consistency",
           axis="fidelity (share of answers ok)",
           console="fidelity (% of answers that are real answers in the prompt's language)", decimals=0),
    Column("consistency_ci", "95% CI", share=True),
    Column("verdicts", "verdicts"),
    Column("chrf", "chrF", figure="chrf", axis="chrF vs reference", console="chrF against the reference answer",
           decimals=1),
    Column("judged", "judged"),
    Column("unparsable", "unparsable"),
    Column("unjudged", "ok, unjudged"),
    Column("score_sum", "score sum (judge x ok)"),
    Column("score_mean", "mean score", figure="score", axis="mean score (judge x match)",
           console="mean score (judge x language match)"),
    Column("score_n", "over"),
    Column("score_ci", "95% CI"),
    Column("judge_mean", "mean judge before the check"),
    Column("robustness", "robustness (before - after)", figure="robustness",
           axis="robustness: judge score lost to the language check"),
]  # fmt: skip
