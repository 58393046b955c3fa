"""Train stage: supervised fine-tuning on one mixture, with LoRA (PEFT) or all parameters (transformers Trainer).

Writes ``adapter/`` (LoRA, safetensors) or ``model/`` (full; also LoRA with ``merge_lora``),
``train_log.jsonl`` (one line per logged step, with useful = non-padding tokens per second),
``metrics.json`` (loss on a fixed probe set before and after training, throughput of the whole run and of
the steps alone) and ``train_config.yaml`` (everything that shaped the run). Checkpoints go to
``checkpoints/``; a killed run resumes from the last one with the same data order.

With ``train.nproc > 1`` the run is relaunched under ``torchrun`` (data-parallel; gloo on CPU):
``python -m babeltune.train JOB.yaml OUT_DIR`` is the entry point each process runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from babeltune.config import LoraArgs, ModelArgs, TrainArgs, dump_yaml, from_dict
from babeltune.data.schema import Example
from babeltune.io import atomic_write_text, read_jsonl, write_json
from babeltune.templates import build_training_text

PROBE_SIZE = 32  # examples whose loss is measured before and after training (without validation)


@dataclass
class TrainJob:
    mixture: Path  # mixture.jsonl
    model: ModelArgs
    method: str  # "lora" | "full"
    lora: LoraArgs
    train: TrainArgs

    @classmethod
    def from_yaml(cls, path: Path) -> TrainJob:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls(
            Path(data["mixture"]),
            from_dict(ModelArgs, data["model"], "model"),
            data["method"],
            from_dict(LoraArgs, data["lora"], "lora"),
            from_dict(TrainArgs, data["train"], "train"),
        )


def tokenize(
    examples: list[Example], tokenizer, template: str, max_length: int, loss_on_prompt: bool
) -> list[dict]:
    """Token ids and labels per example; prompt tokens get label -100 unless the loss covers them."""
    rows = []
    for ex in examples:
        prompt, full = build_training_text(template, tokenizer, ex.instruction, ex.input, ex.output)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
        labels = list(ids)
        if not loss_on_prompt:
            n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            labels[:n_prompt] = [-100] * min(n_prompt, len(labels))
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return rows


def split_validation(rows: list, val_size: float, seed: int) -> tuple[list, list]:
    """Hold out ``val_size`` rows (a count, or a fraction below 1), chosen by a seeded shuffle.

    >>> train, val = split_validation(list(range(10)), 0.2, 0)
    >>> len(train), len(val), sorted(train + val) == list(range(10))
    (8, 2, True)
    """
    n = int(val_size * len(rows)) if val_size < 1 else int(val_size)
    if n == 0:
        return rows, []
    if n >= len(rows):
        from babeltune.registry import BabeltuneError

        raise BabeltuneError(f"train.val_size: {val_size} leaves no training examples out of {len(rows)}")
    order = list(range(len(rows)))
    random.Random(f"{seed}:validation").shuffle(order)
    held = set(order[:n])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def _with_adapter(model, method: str, lora: LoraArgs, quantized: bool):
    if method == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from babeltune.models import lora_targets

    if quantized:
        model = prepare_model_for_kbit_training(model)
    targets = lora.target_modules or lora_targets(model.config.model_type)
    peft_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def chunked_loss_function(model, rows: list[dict], collate, precision: str, wanted: bool):
    """The chunked-loss ``compute_loss_func`` when the config asks for it and the model passes the check."""
    import torch

    sharded = (
        os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    )
    if not wanted or sharded:  # FSDP / ZeRO-3 gather the head's weights only inside the model's forward
        return None
    from babeltune import chunked_loss

    batch = collate([dict(r) for r in rows[:2]])
    device = next(model.parameters()).device
    ids, mask = (batch[k][:, :16].to(device) for k in ("input_ids", "attention_mask"))  # a few tokens suffice
    if not chunked_loss.supported(model, ids, mask):
        return None  # soft-capped or scaled logits: the model's own loss (metrics.json says which ran)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return chunked_loss.loss_function(model.get_output_embeddings(), dtype)


def with_model_outputs(collate):
    """Batches that also ask the model for its hidden states and the last position's logits only."""
    from babeltune.chunked_loss import MODEL_OUTPUTS

    def collate_with(features):
        return {**collate(features), **MODEL_OUTPUTS}

    return collate_with


def _log_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """One JSON line per logged step; useful tokens/s counts non-padding tokens only."""

        def __init__(self):
            self.last = (time.perf_counter(), 0)
            self.rates: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            now, seen = time.perf_counter(), state.num_input_tokens_seen
            rate = (seen - self.last[1]) / max(now - self.last[0], 1e-9)
            self.last = (now, seen)
            row = {"step": state.global_step, "epoch": state.epoch, **(logs or {})}
            if "loss" in row:
                row["useful_tokens_per_second"] = round(rate, 1)
                self.rates.append(rate)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

        def steady_rate(self) -> float | None:
            """Median rate of the logged intervals after the first (which pays for warm-up): the speed of
            the training steps themselves, without start-up, checkpoints and validation."""
            return round(statistics.median(self.rates[1:]), 1) if len(self.rates) > 1 else None

    return JsonlLog()


def _no_final_checkpoint_callback():
    from transformers import TrainerCallback

    class NoFinalCheckpoint(TrainerCallback):
        """Skip the checkpoint Trainer writes when training ends: the finished weights are saved anyway and
        the checkpoint (optimizer state included: 3x the weights for full training) would only be deleted."""

        def _skip_at_end(self, state, control):
            if state.global_step >= state.max_steps:
                control.should_save = False

        def on_step_end(self, args, state, control, **kwargs):
            self._skip_at_end(state, control)

        def on_epoch_end(self, args, state, control, **kwargs):
            self._skip_at_end(state, control)

    return NoFinalCheckpoint()


def bf16_is_fast() -> bool:
    """Whether this hardware multiplies bf16 matrices natively (measured here: 4.5x fp32 on an AVX512-BF16 CPU)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: str, dtype: str) -> str:
    """The autocast precision actually used: ``auto`` becomes bf16 on fast hardware, else the weights' dtype."""
    if precision != "auto":
        return precision
    if dtype != "float32":
        return {"bfloat16": "bf16", "float16": "fp16"}[dtype]
    return "bf16" if bf16_is_fast() else "fp32"


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


def training_arguments(job: TrainJob, out_dir: Path, validate: bool):
    import torch
    from transformers import TrainingArguments

    cfg = job.train.for_method(job.method)
    precision = resolve_precision(cfg.precision, job.model.dtype)
    cadence = "steps" if cfg.eval_every else "epoch"
    distributed = (
        int(os.environ.get("WORLD_SIZE", "1")) > 1
    )  # checkpoints (and validation) every N steps or epoch
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
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


CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint a kill did not cut short; half-written ones are removed."""
    if not folder.is_dir():
        return None
    found = sorted(
        folder.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    for path in reversed(found):
        if all((path / name).exists() for name in CHECKPOINT_FILES):
            return str(path)
        shutil.rmtree(path, ignore_errors=True)
    return None


def launch_distributed(job: TrainJob, out_dir: Path) -> None:
    """Run this job under torchrun with ``job.train.nproc`` processes on this machine."""
    out_dir.mkdir(parents=True, exist_ok=True)
    job_file = out_dir / "job.yaml"
    atomic_write_text(job_file, dump_yaml(job))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={job.train.nproc}",
        "-m", "babeltune.train", str(job_file), str(out_dir),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def run(job: TrainJob, out_dir: Path) -> Path:
    """Fine-tune ``job.model`` on ``job.mixture``; returns the folder holding the adapter or model."""
    target = out_dir / ("adapter" if job.method == "lora" else "model")
    if job.train.nproc > 1 and "LOCAL_RANK" not in os.environ:
        launch_distributed(job, out_dir)
        return target

    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer

    from babeltune.models import load_model, load_tokenizer

    cfg = job.train.for_method(job.method)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    examples = [Example.from_dict(r) for r in read_jsonl(job.mixture)]
    tokenizer = load_tokenizer(job.model.name)
    rows, val = split_validation(
        tokenize(examples, tokenizer, job.model.template, cfg.max_length, cfg.loss_on_prompt),
        cfg.val_size,
        cfg.seed,
    )
    probe = val or rows[:PROBE_SIZE]
    base = load_model(job.model.name, job.model.dtype, quantization=job.model.quantization)
    base_parameters = sum(p.numel() for p in base.parameters())
    model = _with_adapter(base, job.method, job.lora, job.model.quantization != "none")

    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "train_log.jsonl"
    checkpoints = out_dir / "checkpoints"
    resume = last_complete_checkpoint(checkpoints)
    if resume is None:
        log_path.unlink(missing_ok=True)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    precision = resolve_precision(cfg.precision, job.model.dtype)
    loss_func = chunked_loss_function(model, rows, collate, precision, cfg.chunked_loss)
    if loss_func:  # the model returns hidden states and one position's logits; the loss does the rest
        collate = with_model_outputs(collate)
    log_callback = _log_callback(log_path)
    callbacks = [log_callback]
    if not (val and cfg.keep_best):  # picking the best checkpoint needs the last one saved
        callbacks.append(_no_final_checkpoint_callback())
    trainer = Trainer(
        model=model,
        args=training_arguments(job, out_dir, validate=bool(val)),
        train_dataset=rows,
        eval_dataset=val or None,
        data_collator=collate,
        compute_loss_func=loss_func,
        callbacks=callbacks,
    )
    loss_before = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    loss_after = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]

    if trainer.is_world_process_zero():
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        if job.method == "lora" and cfg.merge_lora:
            merged = model.merge_and_unload()
            merged.save_pretrained(out_dir / "model")
            tokenizer.save_pretrained(out_dir / "model")
        useful = trainer.state.num_input_tokens_seen
        write_json(
            out_dir / "metrics.json",
            {
                "examples": len(rows),
                "validation_examples": len(val),
                "probe": "validation split" if val else f"first {len(probe)} training examples",
                "probe_loss_before": loss_before,
                "probe_loss_after": loss_after,
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "train_loss": result.training_loss,
                "steps": result.global_step,
                "resumed_from": resume,
                "processes": trainer.args.world_size,
                "loss": "chunked" if loss_func else "model",
                "gradient_checkpointing": checkpointing_is_on(base),
                "precision": precision,
                "seconds": round(seconds, 2),
                "useful_tokens": useful,
                "tokens_per_second": round(useful / seconds, 1),
                "step_tokens_per_second": log_callback.steady_rate(),
                "parameters": base_parameters,  # of the base model: the x axis of score-vs-size plots
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            },
        )
        atomic_write_text(out_dir / "train_config.yaml", dump_yaml(job))
        shutil.rmtree(checkpoints, ignore_errors=True)  # finished: the saved weights are what counts
    return target


def main(argv: list[str] | None = None) -> int:
    """Entry point for each process under torchrun / accelerate launch."""
    job_file, out_dir = (argv or sys.argv[1:])[:2]
    run(TrainJob.from_yaml(Path(job_file)), Path(out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
