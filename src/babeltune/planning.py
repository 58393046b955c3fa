"""The grid's budget before anything runs: training runs, cost in units of C, tokens, GPU hours, GPU memory,
and what is done (the Slurm script built from it: ``babeltune.cluster.script``).

Mixture names and costs in C come from the config; sizes come from the mix task's manifests once it has
run, else from the data when it is at hand, else from ``data.size_hint``, else they are unknown ("?").
"""

from __future__ import annotations

import json
from pathlib import Path

from babeltune import mix
from babeltune.data import stage as data_stage
from babeltune.experiment import Plan
from babeltune.io import read_json
from babeltune.methods import METHODS
from babeltune.models import parameters_of
from babeltune.records import Example

TOKENS_PER_EXAMPLE = 200  # Alpaca with the template, LLaMA-style tokenizer: used when tokens are not counted
EFFECTIVE_FLOPS = 312e12 * 0.40  # an A100's bf16 peak at 40 % utilisation, for the estimate
GPU_MEMORY_GB = 80  # one A100/H100


def sources_not_at_hand(plan: Plan) -> list[str]:
    """The training data sources that cannot be read without a download (hub ids, missing files)."""
    cfg = plan.cfg.data
    sources = list(cfg.sources.values()) or [cfg.source]
    return [s for s in sources if s != "builtin" and (s.startswith("hf:") or not Path(s).exists())]


def _examples(plan: Plan) -> tuple[list[Example], str] | None:
    """Examples to size the mixtures with, and where they came from; None when there is nothing to go by.
    Once the examples the mix task reads have been made (translated ones, with what the filters dropped),
    those: then plan and mix agree on C."""
    cfg = plan.cfg
    made = plan.mix.inputs["examples"]
    if made.key is not None:
        return data_stage.read_examples(made.path), f"the {made.task.stage} task's examples"
    if not sources_not_at_hand(plan):
        examples, origin = data_stage.load_examples(cfg.data), "the data"
    elif cfg.data.size_hint is not None:
        examples = [
            Example(f"item-{i:06d}:{lang}", f"item-{i:06d}", lang, "", "", "")
            for lang in cfg.data.languages
            for i in range(cfg.data.size_hint)
        ]
        origin = f"data.size_hint ({cfg.data.size_hint} per language)"
    else:
        return None
    if cfg.translate.enabled:  # before translation has run, every source example counts as translated
        src = [e for e in examples if e.lang == cfg.data.source_language]
        examples = src + [
            Example(f"{e.source_id}:{t}", e.source_id, t, e.instruction, e.input, e.output)
            for t in cfg.data.languages
            if t != cfg.data.source_language
            for e in src
        ]
        origin += ", all translations assumed accepted"
    return examples, origin


def mixture_table(plan: Plan) -> tuple[list[dict], str]:
    """One row per mixture (name, regime, examples, tokens, cost in C, per language), and what the sizes
    rest on. Mixtures never need the data to be named; their sizes do."""
    specs = mix.mixture_specs(plan.cfg.mix, plan.cfg.data.languages)
    if plan.mix.done:
        rows = [read_json(mix.manifest_file(plan.mix.output(s.name).path)) for s in specs]
        return rows, "the mix task's manifests"
    found = _examples(plan)
    if found is None:
        unknown = {"examples": None, "tokens": None, "per_language": {}, "budget_C": None}
        return [{"name": s.name, "regime": s.regime, "cost_in_C": s.cost_in_C} | unknown for s in specs], (
            "nothing: the data is not at hand and data.size_hint is not set"
        )
    examples, origin = found
    name = plan.mix.job.tokenizer if not sources_not_at_hand(plan) else None
    tokens = mix.token_sizer(name) if name else None
    mixes, budget = mix.mixtures(examples, plan.cfg.data.languages, plan.cfg.mix, tokens)
    return [mix.manifest(m, budget, plan.cfg.mix, tokens) for m in mixes], origin


def training_rows(plan: Plan, table: list[dict]) -> list[dict]:
    """One row per training run of the grid, in task-ID order."""
    by_name = {m["name"]: m for m in table}
    rows = []
    for task_id, point in enumerate(plan.points):
        m = by_name[point.mixture.name]
        counted = m["tokens"] is not None
        tokens = (
            m["tokens"]
            if counted
            else (None if m["examples"] is None else m["examples"] * TOKENS_PER_EXAMPLE)
        )
        billions = parameters_of(point.model.name)
        epochs = point.train.job.train.epochs
        flops = (
            None
            if None in (billions, tokens)
            else epochs * tokens * METHODS.get(point.method).flops_per_parameter_token * billions * 1e9
        )
        rows.append({
            "task": task_id, "run": point.name, "regime": m["regime"], "examples": m["examples"],
            "tokens": tokens, "tokens_counted": counted, "cost_in_C": m["cost_in_C"], "parameters_b": billions,
            "gpu_hours": None if flops is None else round(flops / EFFECTIVE_FLOPS / 3600, 2),
        })  # fmt: skip
    return rows


def gpu_memory_gb(billions: float | None, method: str) -> float | None:
    """Weights, gradients and Adam states per GPU under plain data parallelism: about 16 bytes a parameter
    for full fine-tuning in mixed precision, about 2 (the frozen bf16 base) for LoRA (the method says)."""
    return None if billions is None else billions * METHODS.get(method).bytes_per_parameter


def task_rows(plan: Plan) -> list[dict]:
    return [
        {"stage": t.stage, "name": t.name, "key": t.key, "status": t.status, "todo": not t.done}
        for t in plan.tasks
    ]


def print_json(plan: Plan) -> None:
    """The tasks as JSON lines (stage, name, key, status, todo): for scripts."""
    for row in task_rows(plan):
        print(json.dumps(row, ensure_ascii=False))


def print_plan(plan: Plan) -> list[dict]:
    """The mixtures, training runs and tasks as tables; returns the training rows."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    table, origin = mixture_table(plan)
    unit = plan.cfg.mix.budget_unit
    budget = next((m["budget_C"] for m in table if m["budget_C"] is not None), "?")
    reason = next((m.get("budget_reason") for m in table if m.get("budget_reason")), "")
    mixtures = Table(title=f"mixtures of {plan.cfg.name}: C = {budget} {unit} (one monolingual run; {reason or 'unknown'});"
                     f" sizes from {origin}", title_justify="left")  # fmt: skip
    for col in (
        "mixture",
        "regime",
        "examples",
        "tokens",
        "cost (C)",
        "runs",
        "total cost (C)",
        "per language",
    ):
        mixtures.add_column(col)
    runs = len(plan.cfg.models) * len(plan.cfg.train.methods)
    for m in table:
        langs = ", ".join(f"{k} {v}" for k, v in m["per_language"].items())
        mixtures.add_row(m["name"], m["regime"], _show(m["examples"]), _show(m["tokens"], "–"), str(m["cost_in_C"]),
                         str(runs), str(round(m["cost_in_C"] * runs, 3)), langs)  # fmt: skip
    console.print(mixtures)
    rows = training_rows(plan, table)
    training = Table(title="training runs (task IDs for --task and Slurm)", title_justify="left")
    for col in (
        "task",
        "run",
        "regime",
        "examples",
        "tokens",
        "cost (C)",
        "params (B)",
        "GPU hours",
        "GPU GB",
    ):
        training.add_column(col)
    for r, point in zip(rows, plan.points, strict=True):
        tokens = _show(r["tokens"]) if r["tokens_counted"] or r["tokens"] is None else f"~{r['tokens']}"
        memory = gpu_memory_gb(r["parameters_b"], point.method)
        training.add_row(str(r["task"]), r["run"], r["regime"], _show(r["examples"]), tokens, str(r["cost_in_C"]),
                         _show(r["parameters_b"]), _show(r["gpu_hours"]), _show(memory and round(memory)))  # fmt: skip
    console.print(training)
    total = sum(r["gpu_hours"] or 0 for r in rows)
    console.print(
        f"{len(rows)} training runs, {sum(r['cost_in_C'] for r in rows):g} C in all, about {total:.1f} GPU hours of "
        f"training (estimate: {EFFECTIVE_FLOPS / 1e12:.0f} TFLOP/s effective; ~ marks tokens estimated at "
        f"{TOKENS_PER_EXAMPLE} per example; GPU GB over {GPU_MEMORY_GB} needs FSDP or ZeRO: docs/accelerate/)"
    )
    tasks = Table(title=f"tasks in {plan.cfg.run_dir}")
    for col in ("stage", "name", "key", "status"):
        tasks.add_column(col)
    for row in task_rows(plan):
        tasks.add_row(row["stage"], row["name"], row["key"] or "–", row["status"])
    console.print(tasks)
    if swept := plan.cfg.axes():
        console.print(sweep_line(plan, swept))
    return rows


def sweep_line(plan: Plan, swept: dict) -> str:
    """The sweep in one line: its axes, and how many tasks of each stage the grid points share."""
    from collections import Counter

    per_stage = Counter(t.stage for t in plan.tasks)
    users = Counter(id(t) for p in plan.points for t in (p.mixtures, p.train, p.generate, p.evaluate))
    shared = Counter(t.stage for t in plan.tasks if users[id(t)] > 1)
    stages = ", ".join(f"{stage} {n}" + (f" ({shared[stage]} shared)" if shared[stage] else "")
                       for stage, n in per_stage.items())  # fmt: skip
    return (f"sweep: {' x '.join(f'{path} {values}' for path, values in swept.items())}: "
            f"{len(plan.points)} grid points; tasks per stage: {stages}")  # fmt: skip


def _show(value: object, missing: str = "?") -> str:
    return missing if value is None else str(value)
