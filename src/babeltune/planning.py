"""The grid's budget before anything runs: training runs, cost in units of C, tokens, GPU hours, and a
Slurm array script whose tasks are `babeltune run CONFIG --task ID`."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from babeltune.experiment import Plan
from babeltune.models import parameters_of

TOKENS_PER_EXAMPLE = 200  # Alpaca with the template, LLaMA-style tokenizer: used when tokens are not counted
EFFECTIVE_FLOPS = 312e12 * 0.40  # an A100's bf16 peak at 40 % utilisation, for the estimate


def training_rows(plan: Plan) -> list[dict]:
    """One row per training run of the grid, in task-ID order."""
    mixtures = {m["name"]: m for m in plan.mixtures}
    train = plan.cfg.train
    rows = []
    grid = itertools.product(plan.cfg.models, train.methods, plan.mixtures)  # build_plan's order
    for task_id, (result, (model, method, mix)) in enumerate(zip(plan.results, grid, strict=True)):
        m = mixtures[mix["name"]]
        tokens = m["tokens"] if m["tokens"] is not None else m["examples"] * TOKENS_PER_EXAMPLE
        epochs = train.for_method(method).epochs
        billions = parameters_of(model.name)
        flops = (
            None if billions is None else epochs * tokens * (6 if method == "full" else 4) * billions * 1e9
        )
        rows.append({
            "task": task_id, "run": result.name, "regime": m["regime"], "examples": m["examples"],
            "tokens": tokens, "tokens_counted": m["tokens"] is not None, "cost_in_C": m["cost_in_C"],
            "parameters_b": billions, "gpu_hours": None if flops is None else round(flops / EFFECTIVE_FLOPS / 3600, 2),
        })  # fmt: skip
    return rows


def slurm_script(plan: Plan, config: Path, rows: list[dict]) -> str:
    hours = max((r["gpu_hours"] or 1.0 for r in rows), default=1.0)
    limit = math.ceil(hours * 1.5 + 1)  # room for generation and evaluation
    logs = plan.cfg.run_dir / "slurm"
    return f"""#!/bin/bash
# Runs the grid of {config}: one array task per training run ({len(rows)} in all).
# Written by `babeltune plan {config} --slurm`. Submit: sbatch THIS_FILE
# When every task has finished: babeltune report {config}
#SBATCH --job-name=babeltune-{plan.cfg.name}
#SBATCH --array=0-{len(rows) - 1}
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time={limit}:00:00
#SBATCH --output={logs}/%A_%a.out
set -euo pipefail
mkdir -p {logs}
babeltune run {config} --task "$SLURM_ARRAY_TASK_ID"
"""
