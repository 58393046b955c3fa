"""Report stage: all runs' scores -> ``summary.csv``, ``summary.md``, plots and ``report.html``."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from statistics import mean
from typing import Any, Literal

from babeltune import axes, records
from babeltune.evaluate.stage import evaluation_file
from babeltune.io import atomic_write_text, read_json, sha256_file, write_json
from babeltune.records import Score
from babeltune.report import contrasts, finding, html, plots, stats
from babeltune.report.aggregate import LARGE_GRID, Cell, add_seed_ranges, cells, paired_tests
from babeltune.report.columns import COLUMNS, with_data
from babeltune.settings import setting
from babeltune.tasks import Outcome, Output, Task

REPORT = "report.html"
SUMMARY = "summary.csv"
COMPARE, PAIRWISE = "compare", "pairwise_summary.json"  # where `babeltune compare` leaves its results


@dataclass
class ReportArgs:
    title: str = setting("babeltune report", "title of the HTML report")
    contrasts: Literal["paper", "all"] = setting(
        "paper",
        "which runs the paired tests compare: the paper's planned contrasts within each model and method "
        "(downsampled multilingual vs English-only and vs multilingual, the multilingual runs vs each "
        "monolingual run in its own language), or every pair of runs (small grids only: R(R-1)/2 x languages)",
    )


@dataclass
class RunResult:
    """One run as the report reads it: its scores and its evaluation, which carries the facts of the mixture
    and the training run it came from (the report reads no other stage's files)."""

    name: str  # e.g. "smollm2-135m/lora/mono-es"
    regime: str
    scores: Path
    model: str = ""  # e.g. "smollm2-135m"
    method: str = ""  # the fine-tuning method
    axes: dict = field(default_factory=dict)  # its values on the sweep's axes (setting path -> value)

    @cached_property
    def evaluation(self) -> dict:
        return read_json(evaluation_file(self.scores))

    @property
    def mixture(self) -> dict:
        """The manifest of the mixture it trained on ({} for an untuned model)."""
        return self.evaluation.get("upstream", {}).get("mixture", {})

    @property
    def training(self) -> dict:
        """Its training metrics ({} for an untuned model)."""
        return self.evaluation.get("upstream", {}).get("training", {})


@dataclass
class ReportRun:
    """One training run of the grid, as the report sees it: its names and its evaluation."""

    name: str
    regime: str
    model: str
    method: str
    scores: Output
    axes: dict = field(default_factory=dict)


@dataclass
class ReportJob:
    report: ReportArgs
    runs: list[list[str]]  # name, regime, model and method of each run, in order
    seen: list[str]  # training languages
    lang_order: list[str]  # test languages, in the order the tables show them
    settings: str  # the experiment's result-shaping settings, shown in the report
    missing: list[str] = field(default_factory=list)  # grid points not finished when this report was made
    axes: list[dict[str, Any]] = field(default_factory=list)  # per run, where the grid sweeps: its values
    # `babeltune compare` results in the run directory: folder -> SHA-256 of its summary (a new or redone
    # comparison changes the key, so the next report shows it)
    comparisons: dict[str, str] = field(default_factory=dict)

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Path:
        results = [
            RunResult(
                name, regime, inputs[f"{i:04d}.scores"], model, method, self.axes[i] if self.axes else {}
            )
            for i, (name, regime, model, method) in enumerate(self.runs)
        ]
        pairwise = [read_json(out_dir.parents[1] / COMPARE / name / PAIRWISE) for name in self.comparisons]
        run(
            self.report,
            results,
            set(self.seen),
            self.settings,
            out_dir,
            self.lang_order,
            self.missing,
            pairwise,
        )
        failed = read_json(out_dir / "grid.json")["failed_judgements"]
        # made on scores that lack judgements: not complete, so the run that retries them makes it again
        return Outcome(failed=[f"{name}: {n} failed judgement(s)" for name, n in failed.items()])

    def locate(self, folder: Path, part: str) -> Path:
        return folder / REPORT


def task(
    cfg: ReportArgs,
    runs: list[ReportRun],
    seen: list[str],
    lang_order: list[str],
    settings: str,
    missing: list[str] = (),
    run_dir: Path | None = None,
) -> Task:
    """``missing``: grid points left out because they have not finished (a report of what is done);
    ``run_dir``: where `babeltune compare` results to show are."""
    inputs = {f"{i:04d}.scores": r.scores for i, r in enumerate(runs)}
    job = ReportJob(cfg, [[r.name, r.regime, r.model, r.method] for r in runs], seen, lang_order, settings,
                    list(missing), [r.axes for r in runs] if any(r.axes for r in runs) else [],
                    comparisons_in(run_dir) if run_dir else {})  # fmt: skip
    return Task("report", "report", job, inputs)


def comparisons_in(run_dir: Path) -> dict[str, str]:
    """The finished `babeltune compare` results of a run directory, each with its summary's hash."""
    return {path.parent.name: sha256_file(path) for path in sorted((run_dir / COMPARE).glob(f"*/{PAIRWISE}"))}


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def summary_csv(
    table: list[Cell], axes_of: dict[str, dict] | None = None, mt_of: dict[str, dict] | None = None
) -> str:
    """One row per cell; each sweep axis and each verdict's share is a column of its own. Where some run's
    training data was machine-translated (``mt_of``: run -> language -> chrF), ``mt_chrf`` gives the
    translations' chrF beside each outcome (empty for human-written data)."""
    rows = []
    for c in table:
        swept = {path: axes.shown(v) for path, v in (axes_of or {}).get(c.run, {}).items()}
        mt = {"mt_chrf": mt_of.get(c.run, {}).get(c.lang)} if mt_of else {}
        rows.append(
            {"run": c.run} | swept | c.row() | mt | {f"verdict_{k}": v for k, v in c.verdicts.items()}
        )
    return _csv(rows)


def translation_chrf(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """Per run whose training data was machine-translated against human-written versions: each language's
    chrF."""
    out = {}
    for r in results:
        if quality := r.mixture.get("translation_quality"):
            out[r.name] = {lang: q["chrF"] for lang, q in quality.items()}
    return out


def translation_note(chrf_of: dict[str, dict[str, float]]) -> list[str]:
    """The machine translations' quality, beside which runs were trained on them."""
    runs_of = defaultdict(list)
    for run, chrf in chrf_of.items():
        runs_of[tuple(chrf.items())].append(run)
    notes = []
    for chrf, runs in runs_of.items():
        langs = ", ".join(f"{lang} {value:.1f}" for lang, value in chrf)
        named = ", ".join(runs) if len(runs) <= 4 else f"{len(runs)} runs"
        notes.append(f"Machine translation quality (chrF against the human-written versions): {langs}; mean "
                     f"{mean(v for _, v in chrf):.1f}. The training data of {named} was translated so; "
                     "summary.csv gives it beside each outcome (mt_chrf).")  # fmt: skip
    return notes


def summary_md(table: list[Cell]) -> str:
    columns, left_out = with_data(table)
    lines = ["| " + " | ".join(col.label for col in columns) + " |", "|" + "---|" * len(columns)]
    for c in table:
        lang = c.lang if c.seen else f"{c.lang} (unseen)"
        values = [
            lang if col.key == "lang" else html._fmt(getattr(c, col.key), col.share).replace("<br>", ", ")
            for col in columns
        ]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "".join(f"\n\n{line}" for line in left_out) + "\n"


def budget_rows(results: list[RunResult]) -> list[dict]:
    rows = []
    for r in results:
        man, met = r.mixture, r.training
        rows.append(
            {
                "run": r.name,
                "regime": r.regime,
                "examples": man.get("examples"),
                "per language": ", ".join(f"{k}:{v}" for k, v in man.get("per_language", {}).items()),
                "cost (C)": man.get("cost_in_C"),
                "loss before": met.get("probe_loss_before"),
                "loss after": met.get("probe_loss_after"),
                "train s": met.get("seconds"),
                "tokens/s": met.get("tokens_per_second"),
            }
        )
    return rows


def model_sizes(results: list[RunResult]) -> dict[str, int | None]:
    """Each run's base-model parameters, from its training metrics (None for untuned baselines)."""
    return {r.name: r.training.get("parameters") for r in results}


def size_points(
    results: list[RunResult], sizes: dict[str, int | None], table: list[Cell], metric: str
) -> list[plots.SizePoint]:
    """Each trained run's ``metric`` averaged over its seen and over its unseen languages, at its model's
    size; only for model families with two sizes or more (one size draws no line)."""
    by_run: dict[tuple[str, bool], list[float]] = defaultdict(list)  # once: a scan per run was quadratic
    for c in table:
        if getattr(c, metric) is not None:
            by_run[c.run, c.seen].append(getattr(c, metric))
    points = []
    for r in results:
        size = sizes[r.name]
        for seen in (True, False) if size else ():
            values = by_run.get((r.name, seen))
            if values:
                series = f"{r.regime} ({r.method})" if r.method else r.regime
                family = plots.model_family(r.model or r.name.split("/")[0])
                points.append(plots.SizePoint(series, family, size, seen, round(mean(values), 3)))
    sizes_of = {f: {p.parameters for p in points if p.family == f} for f in {p.family for p in points}}
    return [p for p in points if len(sizes_of[p.family]) > 1]  # a family with one size has no line to draw


def failed_note(failed: dict[str, int]) -> list[str]:
    if not failed:
        return []
    runs = ", ".join(f"{run} ({n})" for run, n in failed.items())
    return [f"Incomplete scores: {sum(failed.values())} judgement(s) failed and are missing from the judge columns "
            f"of {runs}. The next `babeltune run` asks for exactly those and makes this report again."]  # fmt: skip


def notes_for(results: list[RunResult], missing: list[str] = ()) -> list[str]:
    notes = []
    if missing:
        notes.append(
            f"Incomplete grid: {len(missing)} of {len(missing) + len(results)} grid points had not finished and "
            f"are missing here: {', '.join(missing)}. `babeltune status RUN_DIR` says why; "
            "`babeltune plan CONFIG --slurm FILE --only-todo` writes a script for exactly those."
        )
    if len(results) > LARGE_GRID:
        notes.append(
            f"{len(results)} runs: the per-language plots show each mixture's mean over the runs trained on it "
            "(its models and methods); the tables list every run."
        )
    manifests = [r.mixture for r in results]
    for warning in dict.fromkeys(w for m in manifests for w in m.get("translation_warnings", [])):
        notes.append(f"Machine translation: {warning}. Mixtures in that language hold fewer translated "
                     "items than planned; the translate task's rejected.jsonl lists them with reasons.")  # fmt: skip
    evaluation = results[0].evaluation["judge"]
    if evaluation["pipeline_check_only"]:
        notes.append(
            f"The judge here is the embedded {evaluation['model']} model: a pipeline check, not a meaningful "
            "judge. Use a strong model through an OpenAI-compatible endpoint for real judge scores."
        )
    if evaluation["prompt"] is None:
        notes.append("The LLM judge was disabled: scores are language consistency and chrF only.")
    return notes


BROWSED = ("lang", "source_id", "response", "detected_lang", "verdict", "lang_match", "judge_score", "judge_raw",
           "chrf")  # fmt: skip


def browser_rows(results: list[RunResult], scores: dict[str, list[Score]]) -> dict[str, list[dict]]:
    """Per run, what the response browser shows of each answer, with its prompt."""
    return {r.name: [{k: getattr(s, k) for k in BROWSED} | {"prompt": s.prompt} for s in scores[r.name]]
            for r in results}  # fmt: skip


def figures_for(table: list[Cell], out_dir: Path) -> list[Path]:
    """The per-language figures: bars of each metric, verdict shares, a heatmap (PNG and SVG each)."""
    figures = []
    for col in COLUMNS:
        if col.figure and any(getattr(c, col.key) is not None for c in table):  # no empty figure
            figures += plots.grouped_bars(table, col.key, col.axis, out_dir / col.figure, col.ci)
    figures += plots.verdict_bars(table, out_dir / "verdicts")
    return figures + plots.heatmap(table, "consistency", "language consistency", out_dir / "heatmap")


def size_figures(results: list[RunResult], table: list[Cell], out_dir: Path) -> list[Path]:
    """The paper's score-vs-model-size figures, where the grid has model families with several sizes."""
    sizes, figures = model_sizes(results), []
    for metric, label in (("consistency", "language consistency"), ("score_mean", "mean score"),
                          ("robustness", "robustness (score lost)")):  # fmt: skip
        if points := size_points(results, sizes, table, metric):
            figures += plots.by_size(points, f"{label} (mean over languages)", out_dir / f"{metric}_by_size")
    return figures


def axis_figures(results: list[RunResult], scores: dict[str, list[Score]], seen_langs: set[str],
                 out_dir: Path) -> list[Path]:  # fmt: skip
    """For each swept setting (seeds aside), fidelity against its value: one line per mixture, the mean over
    the runs at that value (the other axes' values and the seeds) of each run's share of ok answers, seen and
    unseen languages apart, with a 95 % interval that resamples those runs, then the prompts within each."""
    swept = dict.fromkeys(path for r in results for path in axes.without_seed(r.axes))
    fidelity = finding.METRICS["fidelity"]
    figures = []
    for path in swept:
        values = list(dict.fromkeys(axes.shown(r.axes[path]) for r in results if path in r.axes))
        runs_at = defaultdict(list)  # (mixture, value, seen) -> per run, its answers' ok (1) or not (0)
        for r in results:
            for seen in (True, False):
                oks = [fidelity(s) for s in scores[r.name] if (s.lang in seen_langs) == seen]
                if path in r.axes and oks:
                    runs_at[r.name.rsplit("/", 1)[-1], axes.shown(r.axes[path]), seen].append(oks)
        points = [plots.AxisPoint(mixture, value, seen, round(mean(map(mean, runs)), 3), axis_interval(runs))
                  for (mixture, value, seen), runs in runs_at.items()]  # fmt: skip
        name = path.replace(".", "_")
        figures += plots.by_axis(
            points, values, path, "fidelity (share of answers ok)", out_dir / f"by_{name}"
        )
    return figures


def axis_interval(runs: list[list[float]]) -> tuple[float, float] | None:
    """95 % interval of the mean over runs: runs resampled, then prompts (one run: prompts only)."""
    return stats.hierarchical_ci(runs) if len(runs) > 1 else stats.bootstrap_ci(runs[0])


def run_infos(results: list[RunResult]) -> list[contrasts.RunInfo]:
    """Each run as the comparisons see it: regimes are compared within its model, method and sweep values
    but the seed; runs of several seeds pair up by seed."""
    return [
        contrasts.RunInfo(r.name, r.regime, comparison_group(r),
                          tuple(r.mixture.get("languages", ())), r.axes.get(axes.SEED),
                          tuple((path, axes.shown(v)) for path, v in axes.without_seed(r.axes).items()))
        for r in results
    ]  # fmt: skip


def comparison_group(r: RunResult) -> str:
    if not r.axes:
        return r.name.rsplit("/", 1)[0]
    return "/".join(part for part in (r.model, r.method, axes.label(axes.without_seed(r.axes))) if part)


def run(
    cfg: ReportArgs,
    results: list[RunResult],
    seen_langs: set[str],
    settings_yaml: str,
    out_dir: Path,
    lang_order: list[str] = (),
    missing: list[str] = (),
    pairwise: list[dict] = (),
) -> Path:
    """Aggregate every run's scores and write the report files (with ``pairwise``, the summaries of
    `babeltune compare`); returns ``report.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = {r.name: records.read(Score, r.scores) for r in results}
    table = cells(scores, seen_langs, lang_order)
    add_seed_ranges(table, {r.name: f"{comparison_group(r)}/{r.name.rsplit('/', 1)[-1]}" for r in results
                            if axes.SEED in r.axes})  # fmt: skip
    mt_chrf = translation_chrf(results)
    atomic_write_text(out_dir / SUMMARY, summary_csv(table, {r.name: r.axes for r in results}, mt_chrf))
    atomic_write_text(out_dir / "summary.md", summary_md(table))
    infos = run_infos(results)
    found = finding.finding(scores, infos, seen_langs, list(lang_order))
    write_json(out_dir / "finding.json", found | {"sentences": finding.sentences(found)})
    failed = {name: n for name, rows in scores.items() if (n := sum(s.judge_error is not None for s in rows))}
    write_json(out_dir / "grid.json", {"reported": [r.name for r in results], "missing": list(missing),
                                       "failed_judgements": failed})  # fmt: skip
    figures = figures_for(table if len(results) <= LARGE_GRID else plots.per_mixture(table), out_dir)
    figures += size_figures(results, table, out_dir) + axis_figures(results, scores, seen_langs, out_dir)
    tests = paired_tests(scores, contrasts.planned(cfg.contrasts, infos), lang_order)
    atomic_write_text(out_dir / "paired.csv", _csv(tests))
    page = html.Page(
        cfg.title, failed_note(failed) + notes_for(results, missing) + translation_note(mt_chrf), html.finding_section(found, finding.sentences(found)), table, tests,
        [p for p in figures if p.suffix == ".png"], budget_rows(results),
        html.answers_block(browser_rows(results, scores), out_dir), settings_yaml, list(pairwise),
    )  # fmt: skip
    path = out_dir / REPORT
    atomic_write_text(path, html.render(page))
    return path
