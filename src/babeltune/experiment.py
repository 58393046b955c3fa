"""Experiment grid -> plan of stage tasks (each stage builds its own) -> execution with caching and resume.

Nothing is read while planning: mixture names come from the config. Each task's folder is named by the
hash of its job and its inputs' content keys, so an unchanged task is never redone, a changed setting
redoes exactly what depends on it, and a killed run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from babeltune import generate, mix, tasks
from babeltune.config import ExperimentConfig, variants
from babeltune.data import stage as data_stage
from babeltune.evaluate import stage as evaluate_stage
from babeltune.methods import METHODS
from babeltune.models import ModelArgs, model_slug
from babeltune.registry import BabeltuneError
from babeltune.report import stage as report_stage
from babeltune.settings import dump_yaml, result_fields
from babeltune.tasks import Summary, Task
from babeltune.train import stage as train_stage
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
    mixtures: Task  # the mix task its mixture comes from
    axes: dict = field(default_factory=dict)  # the sweep's values at this point


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
    """Expand the grid (models x methods x mixtures, times the sweep's axes) into tasks; nothing runs and
    nothing is read here. Tasks whose jobs and inputs are equal are one task, shared by the grid points
    that need it (a learning-rate sweep builds the data and mixtures once).

    With ``shard`` (i, n), generation tasks answer only their share and are never marked done: an
    unsharded run merges the shards."""
    planned: dict[tuple[str, str], Task] = {}

    def shared(task: Task) -> Task:
        return planned.setdefault((task.stage, task.plan_key), task)

    points, mixes, names = [], [], {}
    for variant in variants(cfg):
        v = variant.cfg
        examples, tests = shared(data_stage.examples_task(v.data)), shared(data_stage.tests_task(v.test))
        source = examples.output()
        if v.translate.enabled:
            src = v.data.source_language
            targets = [lang for lang in v.data.languages if lang != src]
            source = shared(
                translate_stage.task(v.translate, src, targets, v.evaluate.langid, source)
            ).output()
        mixtures = shared(
            mix.task(v.mix, v.data.languages, source, v.mix.counting_tokenizer(v.models[0].name))
        )
        mixes.append(mixtures)
        specs = mix.mixture_specs(v.mix, v.data.languages)
        for model, method, spec in product(v.models, v.train.methods, specs):
            name = "/".join(part for part in (model.slug, method, variant.label, spec.name) if part)
            if name in names:
                raise BabeltuneError(f"models: two entries name their runs {name!r} ({names[name].name} and "
                                     f"{model.name}); set models.N.label to tell them apart")  # fmt: skip
            names[name] = model
            trained = shared(
                train_stage.task(model, method, v.lora, v.train, mixtures.output(spec.name), name)
            )
            answers = shared(generate.task(v.generate, method, trained.output(), tests.output(), name, shard))
            scores = shared(evaluate_stage.task(v.evaluate, answers.output(), name, mixtures.output(spec.name),
                                                trained.output()))  # fmt: skip
            points.append(
                GridPoint(name, model, method, spec, trained, answers, scores, mixtures, variant.values)
            )

    report = report_task(cfg, points)
    tasks = [*planned.values(), report]
    for task in tasks:
        task.run_dir = cfg.run_dir
    return Plan(cfg, tasks, points, mixes[0], report)


def report_task(cfg: ExperimentConfig, points: list[GridPoint], missing: list[str] = ()) -> Task:
    """The report over ``points`` (all of the grid, or those done, naming the ``missing`` ones)."""
    runs = [
        report_stage.ReportRun(p.name, p.mixture.regime, model_slug(p.model.name), p.method, p.evaluate.output(),
                               p.axes)
        for p in points
    ]  # fmt: skip
    report = report_stage.task(
        cfg.report, runs, cfg.data.languages, cfg.test.languages, used_settings(cfg), missing, cfg.run_dir
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
    plan.report = report_task(plan.cfg, done, [p.name for p in missing])
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
