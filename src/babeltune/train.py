"""Train stage: supervised fine-tuning on one mixture, with LoRA (PEFT) or all parameters (transformers Trainer).

Writes ``adapter/`` (LoRA, safetensors) or ``model/`` (full), ``train_log.jsonl`` (one line per logged
step), ``metrics.json`` (loss on a fixed probe set before and after training, throughput) and
``train_config.yaml`` (everything that shaped the run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from babeltune.config import LoraArgs, ModelArgs, TrainArgs
from babeltune.data.schema import Example
from babeltune.io import atomic_write_text, read_jsonl, write_json
from babeltune.templates import build_training_text

PROBE_SIZE = 32  # examples whose loss is measured before and after training


@dataclass
class TrainJob:
    mixture: Path  # mixture.jsonl
    model: ModelArgs
    method: str  # "lora" | "full"
    lora: LoraArgs
    train: TrainArgs


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


def _with_adapter(model, method: str, lora: LoraArgs):
    if method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    from babeltune.models import lora_targets

    targets = lora.target_modules or lora_targets(model.config.model_type)
    peft_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def _log_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **(logs or {})}) + "\n")

    return JsonlLog()


def run(job: TrainJob, out_dir: Path) -> Path:
    """Fine-tune ``job.model`` on ``job.mixture``; returns the folder holding the adapter or model."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from babeltune.models import load_model, load_tokenizer

    cfg = job.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    examples = [Example.from_dict(r) for r in read_jsonl(job.mixture)]
    tokenizer = load_tokenizer(job.model.name)
    rows = tokenize(examples, tokenizer, job.model.template, cfg.max_length, cfg.loss_on_prompt)
    probe = rows[:PROBE_SIZE]
    model = _with_adapter(load_model(job.model.name, job.model.dtype), job.method, job.lora)

    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "train_log.jsonl"
    log_path.unlink(missing_ok=True)
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate if job.method == "lora" else cfg.full_learning_rate,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="cosine",
        train_sampling_strategy="group_by_length",  # little compute spent on padding
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=job.model.dtype == "bfloat16",
        fp16=job.model.dtype == "float16",
        include_num_input_tokens_seen="non_padding",
        prediction_loss_only=True,  # evaluate() would otherwise keep every logit: GBs for a 49k vocabulary
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[_log_callback(log_path)],
    )
    loss_before = trainer.evaluate(probe)["eval_loss"]
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    loss_after = trainer.evaluate(probe)["eval_loss"]

    target = out_dir / ("adapter" if job.method == "lora" else "model")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    tokens = sum(len(r["input_ids"]) for r in rows) * cfg.epochs if not cfg.max_steps else None
    write_json(
        out_dir / "metrics.json",
        {
            "examples": len(rows),
            "probe_loss_before": loss_before,
            "probe_loss_after": loss_after,
            "train_loss": result.training_loss,
            "steps": result.global_step,
            "seconds": round(seconds, 2),
            "tokens_seen": trainer.state.num_input_tokens_seen or tokens,
            "tokens_per_second": round((trainer.state.num_input_tokens_seen or tokens or 0) / seconds, 1),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        },
    )
    from babeltune.config import dump_yaml

    atomic_write_text(out_dir / "train_config.yaml", dump_yaml(job))
    return target
