"""Plots in a colour-blind-safe palette (Okabe-Ito): grouped bars per language (one bar per run), a run x
language heatmap, and scores against model size."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from statistics import mean

from babeltune.report.aggregate import Cell
from babeltune.report.columns import METRICS

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P"]
LINESTYLES = ["-", "--", ":", "-."]


def _pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def per_mixture(cells: list[Cell]) -> list[Cell]:
    """One cell per mixture (the run name's last part) and language, each value the mean over the runs that
    trained on that mixture (its models and methods): a plot of the paper's 336 runs shows 12 mixtures.

    >>> a = Cell("m1/lora/mono-es", "es", True, 10, {"consistency": 0.5, "chrf": 20.0}, verdicts={"ok": 0.5})
    >>> b = replace(a, run="m2/full/mono-es", values={"consistency": 0.7, "chrf": None}, verdicts={"ok": 0.7})
    >>> c, = per_mixture([a, b]); c.run, c.consistency, c.chrf, c.n, c.verdicts
    ('mono-es (mean of 2 runs)', 0.6, 20.0, 20, {'ok': 0.6})
    """
    groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for c in cells:
        groups[c.run.rsplit("/", 1)[-1], c.lang].append(c)
    runs_of = defaultdict(set)
    for (mixture, _), group in groups.items():
        runs_of[mixture].update(c.run for c in group)

    def avg(group: list[Cell], field: str) -> float | None:
        values = [c.values[field] for c in group if c.values.get(field) is not None]
        return round(mean(values), 3) if values else None

    return [
        replace(group[0], run=f"{mixture} (mean of {len(runs_of[mixture])} runs)", n=sum(c.n for c in group),
                values={m.key: avg(group, m.key) if m.figure else None for m in METRICS}
                | {m.ci: None for m in METRICS if m.ci},
                verdicts={v: round(mean(c.verdicts[v] for c in group), 3) for v in group[0].verdicts})
        for (mixture, _), group in groups.items()
    ]  # fmt: skip


def error_bar(value: float | None, ci: tuple[float, float] | None) -> tuple[float, float]:
    """Distances below and above a bar to its 95 % interval (0, 0 without one).

    >>> error_bar(0.5, (0.25, 0.75)), error_bar(0.5, None), error_bar(None, (0.1, 0.2))
    ((0.25, 0.25), (0.0, 0.0), (0.0, 0.0))
    """
    if value is None or ci is None:
        return 0.0, 0.0
    return max(value - ci[0], 0.0), max(ci[1] - value, 0.0)


def grouped_bars(cells: list[Cell], metric: str, ylabel: str, out: Path, ci: str | None = None) -> list[Path]:
    """Bars of ``metric`` per language (x) and run (colour), with the ``ci`` field's 95 % interval as error
    bars (the same intervals the tables give); writes PNG and SVG, returns both paths."""
    plt = _pyplot()

    runs = list(dict.fromkeys(c.run for c in cells))
    langs = list(dict.fromkeys(c.lang for c in cells))
    by_key = {(c.run, c.lang): c for c in cells}
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(langs) + 2), 3.8))
    for k, run in enumerate(runs):
        xs = [i + (k - (len(runs) - 1) / 2) * width for i in range(len(langs))]
        here = [by_key.get((run, lang)) for lang in langs]
        ys = [(getattr(c, metric) if c else None) or 0 for c in here]
        bars = [error_bar(getattr(c, metric), getattr(c, ci)) if c and ci else (0.0, 0.0) for c in here]
        yerr = [[b[0] for b in bars], [b[1] for b in bars]] if ci else None
        ax.bar(xs, ys, width, label=run, color=OKABE_ITO[k % len(OKABE_ITO)], yerr=yerr,
               error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333"})  # fmt: skip
    seen = {c.lang: c.seen for c in cells}
    ax.set_xticks(range(len(langs)), [lang if seen[lang] else f"{lang}\n(unseen)" for lang in langs])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(
        fontsize=8, ncol=min(len(runs), 3), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False
    )
    return _save(fig, out)


def verdict_bars(cells: list[Cell], out: Path) -> list[Path]:
    """Per run, the share of each verdict over all its answers, stacked: where the non-answers are."""
    plt = _pyplot()

    runs = list(dict.fromkeys(c.run for c in cells))
    verdicts = list(next(iter(cells)).verdicts) if cells else []
    totals = {run: sum(c.n for c in cells if c.run == run) for run in runs}
    share = {
        (run, v): sum(c.verdicts[v] * c.n for c in cells if c.run == run) / totals[run]
        for run in runs
        for v in verdicts
    }
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(runs) + 1.8))
    left = [0.0] * len(runs)
    for k, v in enumerate(verdicts):
        widths = [share[run, v] for run in runs]
        ax.barh(runs, widths, left=left, label=v, color=OKABE_ITO[k % len(OKABE_ITO)])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers (all test languages)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncol=len(verdicts), loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    return _save(fig, out)


def _save(fig, out: Path) -> list[Path]:
    """Write the figure as PNG (for the HTML page) and SVG (for papers), then free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=120, bbox_inches="tight")  # legends below the axes stay in the picture
    plt.close(fig)
    return paths


def heatmap(cells: list[Cell], metric: str, label: str, out: Path) -> list[Path]:
    """Runs (rows) x languages (columns), the value written in each square; PNG and SVG."""
    plt = _pyplot()

    runs = list(dict.fromkeys(c.run for c in cells))
    langs = list(dict.fromkeys(c.lang for c in cells))
    values = {(c.run, c.lang): getattr(c, metric) for c in cells}
    grid = [
        [values.get((r, lang)) if values.get((r, lang)) is not None else float("nan") for lang in langs]
        for r in runs
    ]
    fig, ax = plt.subplots(figsize=(1.0 * len(langs) + 4, 0.5 * len(runs) + 1.5))
    image = ax.imshow(grid, cmap="cividis", aspect="auto")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(runs)), runs, fontsize=8)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v < 0.6 * max(x for row in grid for x in row if x == x) else "black",
                )
    fig.colorbar(image, ax=ax, label=label)
    return _save(fig, out)


@dataclass(frozen=True)
class SizePoint:
    series: str  # what one line follows across sizes, e.g. "multi-down (lora)"
    family: str  # model family, e.g. "bloom": lines never join two families
    parameters: int
    seen: bool  # averaged over languages seen in training (else unseen ones)
    value: float


def model_family(slug: str) -> str:
    """The model's name without its size: ``bloom-7b1`` -> ``bloom``, ``pythia-1.4b-deduped`` -> ``pythia``.

    >>> model_family("bloom-7b1"), model_family("pythia-1.4b"), model_family("smollm2-135m"), model_family("x")
    ('bloom', 'pythia', 'smollm2', 'x')
    """
    return re.split(r"-\d+(?:\.\d+)?[bm]\d*(?:-|$)", slug, maxsplit=1)[0]


def short_size(parameters: int) -> str:
    """How papers write model sizes.

    >>> short_size(559_214_592), short_size(7_069_016_064), short_size(134_515_008), short_size(1_000_000_000)
    ('559M', '7.1B', '135M', '1B')
    """
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f}".rstrip("0").rstrip(".") + "B"
    return f"{parameters / 1e6:.0f}M"


def by_size(points: list[SizePoint], ylabel: str, out: Path) -> list[Path]:
    """The paper's model-size figure: x = parameters (log), y = the metric averaged over languages, one line
    per training regime and model family; a panel for seen languages and one for unseen. PNG and SVG."""
    plt = _pyplot()

    panels = [seen for seen in (True, False) if any(p.seen == seen for p in points)]
    series = list(dict.fromkeys(p.series for p in points))
    families = list(dict.fromkeys(p.family for p in points))
    ticks = []
    for n in sorted({p.parameters for p in points}):
        if not ticks or n > 1.3 * ticks[-1]:  # close sizes (6.9B, 7.1B) would print over each other
            ticks.append(n)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), sharey=True, squeeze=False)
    for ax, seen in zip(axes[0], panels, strict=True):
        for (i, name), (j, family) in product(enumerate(series), enumerate(families)):
            line = sorted((p.parameters, p.value) for p in points
                          if p.series == name and p.family == family and p.seen == seen)  # fmt: skip
            if line:
                ax.plot(*zip(*line, strict=True), marker=MARKERS[j % len(MARKERS)], color=OKABE_ITO[i % 8],
                        linestyle=LINESTYLES[j % len(LINESTYLES)],
                        label=f"{name}, {family}" if len(families) > 1 else name)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(ticks, [short_size(n) for n in ticks], rotation=45 if len(ticks) > 6 else 0)
        ax.minorticks_off()
        ax.set_xlabel("parameters")
        ax.set_title("languages seen in training" if seen else "unseen languages", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8, loc="best")
    return _save(fig, out)


@dataclass(frozen=True)
class AxisPoint:
    series: str  # a mixture, e.g. "multi-down"
    value: str  # the swept setting's value, as the grid point's name shows it
    seen: bool  # averaged over languages seen in training (else unseen ones)
    fidelity: float
    ci: tuple[float, float] | None = None  # its 95 % interval


def by_axis(points: list[AxisPoint], values: list[str], axis: str, ylabel: str, out: Path) -> list[Path]:
    """A swept setting's values (x, in sweep order) against the metric: one line per mixture (nudged apart
    so their 95 % intervals do not hide each other), a panel for seen languages and one for unseen. PNG and
    SVG."""
    plt = _pyplot()

    panels = [seen for seen in (True, False) if any(p.seen == seen for p in points)]
    series = list(dict.fromkeys(p.series for p in points))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), sharey=True, squeeze=False)
    for ax, seen in zip(axes[0], panels, strict=True):
        for i, name in enumerate(series):
            by_value = {p.value: p for p in points if p.series == name and p.seen == seen}
            xs = [k for k, v in enumerate(values) if v in by_value]
            shown = [by_value[values[k]] for k in xs]
            bars = [list(side) for side in zip(*(error_bar(p.fidelity, p.ci) for p in shown), strict=True)]
            ax.errorbar([x + 0.04 * (i - (len(series) - 1) / 2) for x in xs], [p.fidelity for p in shown],
                        yerr=bars, capsize=3, marker=MARKERS[i % len(MARKERS)],
                        color=OKABE_ITO[i % len(OKABE_ITO)], label=name)  # fmt: skip
        ax.set_xticks(range(len(values)), values, rotation=30 if len(values) > 4 else 0)
        ax.set_xlabel(axis)
        ax.set_title("languages seen in training" if seen else "unseen languages", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8, loc="best")
    return _save(fig, out)
