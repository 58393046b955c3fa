"""What Trainer is told: step arithmetic known before it starts, and its ``TrainingArguments``."""

from __future__ import annotations

import math
import os
from pathlib import Path

from babeltune.precision import resolve_precision
from babeltune.train.settings import TrainArgs


def checkpointing_arguments(arguments_class, enabled: bool) -> dict:
    """Activation checkpointing under the name this transformers uses (``gradient_`` before 5.24)."""
    if not enabled:
        return {}
    name = "activation" if "activation_checkpointing" in arguments_class.__dataclass_fields__ else "gradient"
    return {f"{name}_checkpointing": True, f"{name}_checkpointing_kwargs": {"use_reentrant": False}}


def checkpointing_is_on(model) -> bool:
    """Whether activation checkpointing is active, read from the model (its name changed in 5.24)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def optimizer_steps(examples: int, cfg: TrainArgs, processes: int) -> int:
    """How many optimizer steps a run takes (what Trainer will do, known before it starts).

    >>> optimizer_steps(10, TrainArgs(epochs=1, batch_size=4, grad_accum=1), 1)
    3
    >>> optimizer_steps(64, TrainArgs(epochs=2, batch_size=4, grad_accum=2), 1), optimizer_steps(9, TrainArgs(max_steps=5), 1)
    (16, 5)
    """
    if cfg.max_steps:
        return cfg.max_steps
    batches = math.ceil(examples / (cfg.batch_size * processes))
    return max(1, math.ceil(math.ceil(batches / cfg.grad_accum) * cfg.epochs))


def warmup_steps(ratio: float, steps: int) -> int:
    """Warm-up never takes every step: a one-step run with 5 % warm-up would spend its only step at lr 0.

    >>> warmup_steps(0.05, 1), warmup_steps(0.05, 100), warmup_steps(1.0, 3)
    (0, 5, 2)
    """
    return min(round(ratio * steps), max(steps - 1, 0))


def training_arguments(cfg: TrainArgs, dtype: str, out_dir: Path, validate: bool, steps: int):
    import torch
    from transformers import TrainingArguments

    precision = resolve_precision(cfg.precision, dtype)
    cadence = "steps" if cfg.eval_every else "epoch"  # checkpoints (and validation) every N steps or epoch
    distributed = world_size() > 1
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        warmup_steps=warmup_steps(cfg.warmup_ratio, steps),
        disable_tqdm=True,  # our own bar (steps, loss, tokens/s, ETA); the per-step log is train_log.jsonl
        lr_scheduler_type=cfg.scheduler,
        train_sampling_strategy="group_by_length" if cfg.length_grouping else "random",
        logging_steps=1,
        save_strategy=cadence,
        eval_strategy=cadence if validate else "no",
        eval_steps=cfg.eval_every,
        save_steps=cfg.eval_every,
        save_total_limit=2,
        load_best_model_at_end=validate and cfg.keep_best,
        metric_for_best_model="eval_loss",
        report_to=cfg.report_to or "none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo" if distributed and not torch.cuda.is_available() else None,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        include_num_input_tokens_seen="non_padding",
        **checkpointing_arguments(TrainingArguments, cfg.gradient_checkpointing),
        prediction_loss_only=True,  # evaluate() would otherwise keep every logit: GBs for a 49k vocabulary
    )


def world_size() -> int:
    """The processes training together (a launcher sets WORLD_SIZE; alone, 1)."""
    return int(os.environ.get("WORLD_SIZE", "1"))
