"""Experiment grid -> plan of stage tasks -> execution with caching and resume.

Each task's output folder is named by a key hashed from its settings and its inputs' keys, so an
unchanged task is never redone, a changed setting redoes exactly what depends on it, and a killed run
continues where it stopped (stages that append as they go resume mid-way).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from babeltune import __version__
from babeltune import data as data_stage
from babeltune import evaluate as evaluate_stage
from babeltune import generate as generate_stage
from babeltune import mix as mix_stage
from babeltune import report as report_stage
from babeltune import train as train_stage
from babeltune import translate as translate_stage
from babeltune.config import ExperimentConfig, dump_yaml
from babeltune.data.schema import Example
from babeltune.io import atomic_write_text, write_json
from babeltune.models import model_slug
from babeltune.registry import BabeltuneError

DONE = ".done.json"


def stage_key(*parts: object) -> str:
    """A short hash of a task's settings, its inputs' keys and babeltune's version (a new release may
    compute a stage differently, so it never reuses an older release's outputs)."""
    parts = (__version__, *parts)
    blob = json.dumps(
        parts, sort_keys=True, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass
class Task:
    stage: str
    name: str
    key: str
    out_dir: Path
    action: Callable[[], object]
    deps: list[str] = field(default_factory=list)
    partial: bool = False  # does only part of the work (a shard): never marked done

    @property
    def done(self) -> bool:
        return (self.out_dir / DONE).exists()


@dataclass
class Plan:
    cfg: ExperimentConfig
    tasks: list[Task]
    results: list[report_stage.stage.RunResult]
    report_dir: Path
    mixtures: list[dict]  # name, regime, examples, cost in C


def build_plan(cfg: ExperimentConfig, shard: tuple[int, int] | None = None) -> Plan:
    """Expand the grid (models x methods x mixtures) into tasks; nothing runs here except the mixture sizing.

    With ``shard`` (i, n), generation tasks answer only their share and are never marked done: an
    unsharded run merges the shards."""
    root = cfg.run_dir
    tasks: list[Task] = []

    data_key = stage_key("data", cfg.data)
    data_dir = root / "data" / data_key
    tasks.append(
        Task("data", "training examples", data_key, data_dir, lambda: data_stage.run(cfg.data, data_dir))
    )
    test_key = stage_key("tests", cfg.test)
    test_dir = root / "tests" / test_key
    tasks.append(
        Task(
            "data", "test prompts", test_key, test_dir, lambda: data_stage.stage.run_tests(cfg.test, test_dir)
        )
    )

    examples_key, examples_path = data_key, data_dir / "examples.jsonl"
    if cfg.translate.enabled:
        src, targets = cfg.data.source_language, translation_targets(cfg)
        examples_key = stage_key("translate", cfg.translate, data_key, src, targets)
        tr_dir = root / "translate" / examples_key
        cache = Path(cfg.translate.cache) if cfg.translate.cache else root / "translation-cache.sqlite"
        tasks.append(
            Task(
                "translate",
                f"{src} -> {', '.join(targets)}",
                examples_key,
                tr_dir,
                lambda: translate_stage.run(
                    cfg.translate, data_dir / "examples.jsonl", src, targets, tr_dir, cache
                ),
                [data_key],
            )
        )
        examples_path = tr_dir / "examples.jsonl"

    mix_key = stage_key("mix", cfg.mix, examples_key)
    mix_dir = root / "mix" / mix_key
    tasks.append(
        Task(
            "mix",
            "mixtures",
            mix_key,
            mix_dir,
            lambda: mix_stage.run(cfg.mix, examples_path, cfg.data.languages, mix_dir, mix_tokenizer(cfg)),
            [examples_key],
        )
    )
    mixtures = _mixture_table(cfg)

    results = []
    for model in cfg.models:
        for method in cfg.train.methods:
            for m in mixtures:
                name = f"{model_slug(model.name)}/{method}/{m['name']}"
                job = train_stage.TrainJob(
                    mix_dir / m["name"] / "mixture.jsonl", model, method, cfg.lora, cfg.train
                )
                train_key = stage_key("train", model, method, cfg.lora, cfg.train, mix_key, m["name"])
                train_dir = root / "train" / f"{name.replace('/', '-')}-{train_key}"
                tasks.append(
                    Task(
                        "train",
                        name,
                        train_key,
                        train_dir,
                        lambda j=job, d=train_dir: train_stage.run(j, d),
                        [mix_key],
                    )
                )

                weights = train_dir / ("adapter" if method == "lora" else "model")
                gen_job = generate_stage.GenerateJob(
                    test_dir / "test_prompts.jsonl",
                    model,
                    adapter=weights if method == "lora" else None,
                    checkpoint=weights if method == "full" else None,
                    run_name=name,
                    gen=cfg.generate,
                    method=method,
                )
                gen_key = stage_key("generate", train_key, test_key, cfg.generate)
                gen_dir = root / "generate" / f"{name.replace('/', '-')}-{gen_key}"
                tasks.append(
                    Task(
                        "generate",
                        name,
                        gen_key,
                        gen_dir,
                        lambda j=gen_job, d=gen_dir: generate_stage.run(j, d, shard),
                        [train_key, test_key],
                        partial=shard is not None,
                    )
                )

                eval_key = stage_key("evaluate", gen_key, cfg.evaluate)
                eval_dir = root / "evaluate" / f"{name.replace('/', '-')}-{eval_key}"
                tasks.append(
                    Task(
                        "evaluate",
                        name,
                        eval_key,
                        eval_dir,
                        lambda d=eval_dir, g=gen_dir: evaluate_stage.run(
                            cfg.evaluate, g / "responses.jsonl", d
                        ),
                        [gen_key],
                    )
                )
                results.append(
                    report_stage.stage.RunResult(
                        name,
                        m["regime"],
                        gen_dir / "responses.jsonl",
                        eval_dir / "scores.jsonl",
                        eval_dir / "evaluation.json",
                        train_dir / "metrics.json",
                        mix_dir / m["name"] / "manifest.json",
                        model=model_slug(model.name),
                        method=method,
                    )
                )

    eval_keys = [t.key for t in tasks if t.stage == "evaluate"]
    report_key = stage_key("report", cfg.report, eval_keys)
    report_dir = root / "report" / report_key
    settings = dump_yaml(cfg)
    tasks.append(
        Task(
            "report",
            "report",
            report_key,
            report_dir,
            lambda: report_stage.run(
                cfg.report, results, set(cfg.data.languages), settings, report_dir, cfg.test.languages
            ),
            eval_keys,
        )
    )
    return Plan(cfg, tasks, results, report_dir, mixtures)


def mix_tokenizer(cfg: ExperimentConfig) -> str | None:
    """The tokenizer that counts mixture tokens: mix.tokenizer, else the first model when it needs no download."""
    if cfg.mix.tokenizer:
        return cfg.mix.tokenizer
    first = cfg.models[0].name
    return first if first.startswith("builtin:") or Path(first).is_dir() else None


def translation_targets(cfg: ExperimentConfig) -> list[str]:
    return [lang for lang in cfg.data.languages if lang != cfg.data.source_language]


def sources_not_at_hand(cfg: ExperimentConfig) -> list[str]:
    """The training data sources that cannot be read without a download (hub ids, missing files)."""
    sources = list(cfg.data.sources.values()) or [cfg.data.source]
    return [s for s in sources if s != "builtin" and (s.startswith("hf:") or not Path(s).exists())]


def _examples_for_plan(cfg: ExperimentConfig) -> list[Example]:
    away = sources_not_at_hand(cfg)
    if not away:
        return data_stage.stage.load_examples(cfg.data)
    if cfg.data.size_hint is None:
        missing = [s for s in away if not s.startswith("hf:")]
        if missing:
            raise BabeltuneError(f"{missing[0]}: no such file or folder (data.source)")
        raise BabeltuneError(
            "data.size_hint: the data is not at hand (a hub id or a missing file); give its size to plan"
        )
    # Placeholders of the announced size: mixture sizes follow from the regimes alone.
    return [
        Example(f"item-{i:06d}:{lang}", f"item-{i:06d}", lang, "", "", "")
        for lang in cfg.data.languages
        for i in range(cfg.data.size_hint)
    ]


def _mixture_table(cfg: ExperimentConfig) -> list[dict]:
    """Names and sizes of the grid's mixtures, computed from the data without writing anything.

    Before translation has run, every source example counts as translated (an upper bound)."""
    examples = _examples_for_plan(cfg)
    if cfg.translate.enabled:
        source = [e for e in examples if e.lang == cfg.data.source_language]
        examples = source + [
            Example(f"{e.source_id}:{t}", e.source_id, t, e.instruction, e.input, e.output)
            for t in translation_targets(cfg)
            for e in source
        ]
    name = None if sources_not_at_hand(cfg) else mix_tokenizer(cfg)
    tokens = mix_stage.token_sizer(name) if name else None
    mixes, budget = mix_stage.mixtures(examples, cfg.data.languages, cfg.mix, tokens)
    return [mix_stage.manifest(m, budget, cfg.mix, tokens) for m in mixes]


def select_task(plan: Plan, task_id: int) -> None:
    """Keep the shared preparation and the train/generate/evaluate chain of one grid point (a Slurm array
    task); the report is made once all are done."""
    if not 0 <= task_id < len(plan.results):
        raise BabeltuneError(f"--task: {task_id} is not a task of this grid (0 to {len(plan.results) - 1})")
    name = plan.results[task_id].name
    plan.tasks = [
        t
        for t in plan.tasks
        if t.stage in ("data", "translate", "mix") or (t.name == name and t.stage != "report")
    ]


@contextlib.contextmanager
def run_dir_lock(root: Path):
    """One babeltune process per run directory: a second one exits with a clear message."""
    import fcntl

    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".lock", "a+")  # noqa: SIM115 - held for the whole run
    except OSError as err:
        raise BabeltuneError(f"output_dir: cannot write to {root}: {err.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BabeltuneError(
            f"{root} is in use by another babeltune process; wait for it or use another output_dir"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def execute(plan: Plan, log: Callable[[str], None] = print) -> dict[str, float]:
    """Run every task that is not done yet; returns seconds spent per stage."""
    with run_dir_lock(plan.cfg.run_dir):
        try:
            return _execute(plan, log)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
                raise BabeltuneError(f"cannot write {err.filename or plan.cfg.run_dir}: {err.strerror}; "
                                     "finished tasks are kept, rerun when there is room") from None  # fmt: skip
            raise


def _execute(plan: Plan, log: Callable[[str], None]) -> dict[str, float]:
    root = plan.cfg.run_dir
    atomic_write_text(root / "config.yaml", dump_yaml(plan.cfg))
    timings: dict[str, float] = {}
    todo = [t for t in plan.tasks if not t.done]
    log(f"{len(plan.tasks) - len(todo)} of {len(plan.tasks)} tasks already done; running {len(todo)}")
    for i, task in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {task.stage}: {task.name}")
        start = time.perf_counter()
        task.out_dir.mkdir(parents=True, exist_ok=True)
        task.action()
        seconds = time.perf_counter() - start
        if task.partial:
            continue
        write_json(
            task.out_dir / DONE,
            {"stage": task.stage, "name": task.name, "key": task.key, "seconds": round(seconds, 2)},
        )
        timings[task.stage] = timings.get(task.stage, 0.0) + seconds
    return timings
