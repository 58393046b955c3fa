"""Plots: grouped bars per language, one bar per run, in a colour-blind-safe palette (Okabe-Ito)."""

from __future__ import annotations

from pathlib import Path

from babeltune.report.aggregate import Cell

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def grouped_bars(cells: list[Cell], metric: str, ylabel: str, out: Path) -> list[Path]:
    """Bars of ``metric`` per language (x) and run (colour); writes PNG and SVG, returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys(c.run for c in cells))
    langs = list(dict.fromkeys(c.lang for c in cells))
    values = {(c.run, c.lang): getattr(c, metric) for c in cells}
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(langs) + 2), 3.8))
    for k, run in enumerate(runs):
        xs = [i + (k - (len(runs) - 1) / 2) * width for i in range(len(langs))]
        ys = [values.get((run, lang)) or 0 for lang in langs]
        ax.bar(xs, ys, width, label=run, color=OKABE_ITO[k % len(OKABE_ITO)])
    seen = {c.lang: c.seen for c in cells}
    ax.set_xticks(range(len(langs)), [lang if seen[lang] else f"{lang}\n(unseen)" for lang in langs])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(
        fontsize=8, ncol=min(len(runs), 3), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False
    )
    return _save(fig, out)


def _save(fig, out: Path) -> list[Path]:
    """Write the figure as PNG (for the HTML page) and SVG (for papers), then free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


def heatmap(cells: list[Cell], metric: str, label: str, out: Path) -> list[Path]:
    """Runs (rows) x languages (columns), the value written in each square; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
