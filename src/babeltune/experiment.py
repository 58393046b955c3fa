"""Experiment grid -> plan of stage tasks (each stage builds its own) -> execution with caching and resume.

Nothing is read while planning: mixture names come from the config. Each task's folder is named by the
hash of its job and its inputs' content keys, so an unchanged task is never redone, a changed setting
redoes exactly what depends on it, and a killed run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from babeltune import generate, mix, tasks
from babeltune.config import ExperimentConfig
from babeltune.data import stage as data_stage
from babeltune.evaluate import stage as evaluate_stage
from babeltune.models import ModelArgs, model_slug
from babeltune.registry import BabeltuneError
from babeltune.report import stage as report_stage
from babeltune.settings import dump_yaml, result_fields
from babeltune.tasks import Summary, Task
from babeltune.train import stage as train_stage
from babeltune.train.methods import METHODS
from babeltune.translate import stage as translate_stage

STAGES = ["data", "translate", "mix", "train", "generate", "evaluate", "report"]


@dataclass
class GridPoint:
    """One training run of the grid and what follows from it: a ``--task`` ID, a row of the report."""

    name: str  # e.g. "smollm2-135m/lora/mono-es"
    model: ModelArgs
    method: str
    mixture: mix.MixtureSpec
    train: Task
    generate: Task
    evaluate: Task


@dataclass
class Plan:
    cfg: ExperimentConfig
    tasks: list[Task]  # in order: every task comes after the tasks it reads
    points: list[GridPoint]
    mix: Task
    report: Task

    @property
    def report_dir(self) -> Path:
        return self.report.out_dir


def build_plan(cfg: ExperimentConfig, shard: tuple[int, int] | None = None) -> Plan:
    """Expand the grid (models x methods x mixtures) into tasks; nothing runs and nothing is read here.

    With ``shard`` (i, n), generation tasks answer only their share and are never marked done: an
    unsharded run merges the shards."""
    examples, tests = data_stage.examples_task(cfg.data), data_stage.tests_task(cfg.test)
    planned = [examples, tests]
    source = examples.output()
    if cfg.translate.enabled:
        src = cfg.data.source_language
        targets = [lang for lang in cfg.data.languages if lang != src]
        translation = translate_stage.task(cfg.translate, src, targets, cfg.evaluate.langid, source)
        planned.append(translation)
        source = translation.output()
    mixtures = mix.task(cfg.mix, cfg.data.languages, source, cfg.mix.counting_tokenizer(cfg.models[0].name))
    planned.append(mixtures)

    points = []
    specs = mix.mixture_specs(cfg.mix, cfg.data.languages)
    for model, method, spec in product(cfg.models, cfg.train.methods, specs):
        name = f"{model_slug(model.name)}/{method}/{spec.name}"
        trained = train_stage.task(model, method, cfg.lora, cfg.train, mixtures.output(spec.name), name)
        answers = generate.task(cfg.generate, method, trained.output(), tests.output(), name, shard)
        scores = evaluate_stage.task(cfg.evaluate, answers.output(), name)
        points.append(GridPoint(name, model, method, spec, trained, answers, scores))
        planned += [trained, answers, scores]

    report = report_task(cfg, mixtures, points)
    planned.append(report)
    for task in planned:
        task.run_dir = cfg.run_dir
    return Plan(cfg, planned, points, mixtures, report)


def report_task(
    cfg: ExperimentConfig, mixtures: Task, points: list[GridPoint], missing: list[str] = ()
) -> Task:
    """The report over ``points`` (all of the grid, or those done, naming the ``missing`` ones)."""
    runs = [
        report_stage.ReportRun(p.name, p.mixture.regime, model_slug(p.model.name), p.method,
                               mixtures.output(p.mixture.name), p.train.output(), p.generate.output(),
                               p.evaluate.output())
        for p in points
    ]  # fmt: skip
    report = report_stage.task(
        cfg.report, runs, cfg.data.languages, cfg.test.languages, used_settings(cfg), missing
    )
    report.run_dir = cfg.run_dir
    return report


def report_what_is_done(plan: Plan) -> list[GridPoint]:
    """Make the plan's only task a report of the grid points whose evaluation is complete (a report job
    that runs whatever became of the training runs); returns the points left out."""
    done = [p for p in plan.points if p.evaluate.done]
    if not done:
        raise BabeltuneError("report: no grid point has finished its evaluation yet; nothing to report "
                             f"(babeltune status {plan.cfg.run_dir} says where each stands)")  # fmt: skip
    missing = [p for p in plan.points if not p.evaluate.done]
    plan.report = report_task(plan.cfg, plan.mix, done, [p.name for p in missing])
    plan.tasks = [plan.report]
    return missing


def used_settings(cfg: ExperimentConfig) -> str:
    """The settings that shaped the grid's results, as the report shows them: no plumbing, and no group
    or field that no task of this grid uses (so changing one redoes no report)."""
    used = result_fields(cfg)
    used.pop("slurm", None)  # where it ran, never what
    if not cfg.translate.enabled:
        del used["translate"]
    for name in METHODS.names():
        if name not in cfg.train.methods:  # a method the grid does not train: its own settings shape nothing
            method = METHODS.get(name)
            for field in method.overrides.values():
                used["train"].pop(field, None)
            if method.settings_group and not any(
                METHODS.get(m).settings_group == method.settings_group for m in cfg.train.methods
            ):
                used.pop(method.settings_group, None)
    if not cfg.evaluate.judge.enabled:
        used["evaluate"]["judge"] = {"enabled": False}
    return dump_yaml(used)


SHARED = ("data", "translate", "mix")  # the preparation every grid point reads


def select_task(plan: Plan, task_id: int, prepared: bool = False) -> None:
    """Keep the train/generate/evaluate chain of one grid point, after the shared preparation; the report
    is made once all are done. ``prepared``: the preparation must be done already (a Slurm array element,
    after the prep job), so this process owns its grid point's tasks and nothing else."""
    if not 0 <= task_id < len(plan.points):
        raise BabeltuneError(f"--task: {task_id} is not a task of this grid (0 to {len(plan.points) - 1})")
    point = plan.points[task_id]
    chain = {id(point.train), id(point.generate), id(point.evaluate)}
    shared = [t for t in plan.tasks if t.stage in SHARED]
    if prepared:
        undone = [f"{t.stage} ({t.status})" for t in shared if not t.done]
        if undone:
            raise BabeltuneError(f"--prepared: the shared preparation is not done: {', '.join(undone)}; "
                                 "run `babeltune mix CONFIG` (the Slurm script's prep job) first")  # fmt: skip
        shared = []
    plan.tasks = shared + [t for t in plan.tasks if id(t) in chain]


def up_to(plan: Plan, stage: str) -> None:
    """Keep only the tasks of ``stage`` and the stages before it."""
    last = STAGES.index(stage)
    plan.tasks = [t for t in plan.tasks if STAGES.index(t.stage) <= last]


def execute(plan: Plan, log: Callable[[str], None] = print) -> Summary:
    """Run every task of the plan that is not done yet (other processes may share the run directory)."""
    return tasks.execute(plan.tasks, log)
