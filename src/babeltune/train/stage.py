"""Train stage: supervised fine-tuning on one mixture, with LoRA (PEFT) or all parameters (transformers Trainer).

Writes ``adapter/`` (LoRA, safetensors) or ``model/`` (full; also LoRA with ``merge_lora``), each with the
``babeltune.json`` that describes it, ``train_log.jsonl`` (one line per logged step, with useful =
non-padding tokens per second) and ``metrics.json`` (loss on a fixed probe set before and after training,
throughput of the whole run and of the steps alone). Checkpoints go to ``checkpoints/``; a killed run
resumes from the last one with the same data order. With ``train.nproc > 1`` the run is relaunched on that
many processes (``launch.py``). What differs between methods is the method's (``babeltune.methods``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from babeltune import checkpoint, preempt
from babeltune.io import honour_umask, read_jsonl, write_json
from babeltune.methods import METHODS, WHOLE_MODEL, Method
from babeltune.models import ModelArgs
from babeltune.precision import autocast_dtype, resolve_precision
from babeltune.records import Example
from babeltune.tasks import Output, Task
from babeltune.train import callbacks
from babeltune.train.arguments import checkpointing_is_on, optimizer_steps, training_arguments, world_size
from babeltune.train.data import PROBE_SIZE, probe_rows, split_validation, tokenize
from babeltune.train.launch import check_world, launch_distributed
from babeltune.train.resume import last_complete_checkpoint
from babeltune.train.settings import LoraArgs, TrainArgs


@dataclass
class TrainJob:
    """One training run: the model, the method and exactly the settings it trains with."""

    model: ModelArgs
    method: str  # a name in babeltune.methods.METHODS
    lora: LoraArgs | None  # None for methods without the lora group
    train: TrainArgs

    def __post_init__(self) -> None:
        self.train = self.train.for_method(self.method)
        if METHODS.get(self.method).settings_group is None:  # the lora group: for methods that read it
            self.lora = None

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Path:
        return run(self, inputs["mixture"], out_dir)

    def locate(self, folder: Path, part: str) -> Path:
        return weights_dir(folder, self.method)


def weights_dir(out_dir: Path, method: str) -> Path:
    return out_dir / METHODS.get(method).weights_folder


def task(model: ModelArgs, method: str, lora: LoraArgs, train: TrainArgs, mixture: Output, name: str) -> Task:
    job = TrainJob(model, method, lora, train)
    needs = {"train.accelerate_config": Path(train.accelerate_config)} if train.accelerate_config else {}
    return Task("train", name, job, {"mixture": mixture}, slug=name.replace("/", "-"), needs=needs)


def chunked_loss_function(model, rows: list[dict], collate, precision: str, wanted: bool):
    """The chunked-loss ``compute_loss_func`` when the config asks for it and the model passes the check."""

    sharded = (
        os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    )
    if not wanted or sharded:  # FSDP / ZeRO-3 gather the head's weights only inside the model's forward
        return None
    from babeltune.train import chunked_loss

    batch = collate([dict(r) for r in rows[:2]])
    device = next(model.parameters()).device
    ids, mask = (batch[k][:, :16].to(device) for k in ("input_ids", "attention_mask"))  # a few tokens suffice
    if not chunked_loss.supported(model, ids, mask):
        return None  # soft-capped or scaled logits: the model's own loss (metrics.json says which ran)
    return chunked_loss.loss_function(model.get_output_embeddings(), autocast_dtype(precision))


def with_model_outputs(collate):
    """Batches that also ask the model for its hidden states and the last position's logits only."""
    from babeltune.train.chunked_loss import MODEL_OUTPUTS

    def collate_with(features):
        return {**collate(features), **MODEL_OUTPUTS}

    return collate_with


def trainable_fingerprint(model) -> float:
    """A number that changes when any trained weight changes (the sum of their absolute values)."""
    import torch

    with torch.no_grad():
        return float(sum(p.detach().float().abs().sum() for p in model.parameters() if p.requires_grad))


def learned_anything(
    loss_before: float, loss_after: float, weights_before: float, weights_after: float
) -> bool:
    """Whether a run moved at all: its probe loss, or its trained weights.

    >>> learned_anything(3.0963, 3.0963, 10.0, 10.0), learned_anything(3.1, 2.9, 10.0, 10.5)
    (False, True)
    """
    return abs(loss_after - loss_before) > 1e-4 or abs(weights_after - weights_before) > 1e-6 * max(
        1.0, abs(weights_before)
    )


@dataclass
class Session:
    """One training run being set up and run: its data, model and trainer."""

    job: TrainJob
    method: Method
    out_dir: Path
    tokenizer: object
    rows: list[dict]
    val: list[dict]
    base: object
    base_parameters: int  # counted before the method wraps the model (LoRA adds its own to it)
    model: object
    precision: str
    frozen_dtype: str | None = None  # the frozen weights' dtype when a speed-up cast them
    loss_func: object = None
    log: object = None
    trainer: object = None

    @property
    def steps(self) -> int:
        return optimizer_steps(len(self.rows), self.job.train, world_size())


def prepare(job: TrainJob, mixture: Path, out_dir: Path) -> Session:
    """Seeded, tokenized and split data; the base model wrapped as the method trains it."""
    import torch

    from babeltune.models import load_model, load_tokenizer

    cfg, method = job.train, METHODS.get(job.method)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    examples = [Example.from_dict(r) for r in read_jsonl(mixture)]
    tokenizer = load_tokenizer(job.model.name)
    tokenized = tokenize(examples, tokenizer, job.model.template, cfg.max_length, cfg.loss_on_prompt)
    rows, val = split_validation(tokenized, cfg.val_size, cfg.seed)
    base = load_model(job.model.name, job.model.dtype, quantization=job.model.quantization)
    parameters = sum(p.numel() for p in base.parameters())
    model = method.wrap(base, job.lora, job.model.quantization != "none")
    precision = resolve_precision(cfg.precision, job.model.dtype)
    return Session(job, method, out_dir, tokenizer, rows, val, base, parameters, model, precision)


def build_trainer(s: Session) -> None:
    """The loss, the method's speed-ups, the callbacks and the Trainer, on ``s``."""
    from transformers import DataCollatorForSeq2Seq, Trainer
    from transformers.trainer_callback import PrinterCallback

    cfg = s.job.train
    collate = DataCollatorForSeq2Seq(s.tokenizer, padding=True, label_pad_token_id=-100)
    s.loss_func = chunked_loss_function(s.model, s.rows, collate, s.precision, cfg.chunked_loss)
    s.frozen_dtype = s.method.speed_ups(s.model, s.precision)  # after the fp32 check just above
    if s.loss_func:  # the model returns hidden states and one position's logits; the loss does the rest
        collate = with_model_outputs(collate)
    s.log = callbacks.log_callback(s.out_dir / "train_log.jsonl", s.out_dir.name)
    chosen = [s.log]
    if not (s.val and cfg.keep_best):  # picking the best checkpoint needs the last one saved
        chosen.append(callbacks.no_final_checkpoint_callback())
    chosen.append(callbacks.stop_on_signal_callback())  # after the one above: a stop always saves
    s.trainer = callbacks.epoch_seeded(Trainer, cfg.seed)(
        model=s.model, args=training_arguments(cfg, s.job.model.dtype, s.out_dir, bool(s.val), s.steps),
        train_dataset=s.rows, eval_dataset=s.val or None, data_collator=collate, compute_loss_func=s.loss_func,
        callbacks=chosen,
    )  # fmt: skip
    s.trainer.remove_callback(PrinterCallback)  # raw log dicts on the console: the bar says it better


@dataclass
class Outcome:
    resumed_from: str | None
    result: object  # Trainer's TrainOutput
    seconds: float
    loss_before: float
    loss_after: float
    learned: bool
    probe_seconds: float  # both probe losses together: not in ``seconds``


def train(s: Session) -> Outcome:
    """Probe loss, training (resumed from the last complete checkpoint; stopped and saved on Slurm's
    warning signal), probe loss again."""
    probe = probe_rows(s.val or s.rows)
    resume = last_complete_checkpoint(s.out_dir / "checkpoints")
    if resume is None:
        (s.out_dir / "train_log.jsonl").unlink(missing_ok=True)
    probed = time.perf_counter()
    loss_before = s.trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    probe_seconds = time.perf_counter() - probed
    weights_before = trainable_fingerprint(s.model)
    if resume is not None:
        step = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
        print(f"train {s.out_dir.name}: resuming from {Path(resume).name} (step {step} of {s.steps})",
              file=sys.stderr, flush=True)  # fmt: skip
    start = time.perf_counter()
    with preempt.checkpointable():
        result = s.trainer.train(resume_from_checkpoint=resume)
    state = s.trainer.state
    if preempt.requested() and state.global_step < state.max_steps:
        print(f"train {s.out_dir.name}: stopped at step {state.global_step} of {state.max_steps}; "
              f"checkpoint-{state.global_step} saved", file=sys.stderr, flush=True)  # fmt: skip
        preempt.raise_if_requested()
    seconds = time.perf_counter() - start
    probed = time.perf_counter()
    loss_after = s.trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    probe_seconds += time.perf_counter() - probed
    learned = learned_anything(loss_before, loss_after, weights_before, trainable_fingerprint(s.model))
    if not learned and s.trainer.is_world_process_zero():
        print(f"babeltune: warning: training {s.out_dir.name} moved neither its loss ({loss_before:.4f} -> "
              f"{loss_after:.4f}) nor its weights: check train.learning_rate, warmup_ratio and the number of "
              "steps", file=sys.stderr)  # fmt: skip
    return Outcome(resume, result, seconds, loss_before, loss_after, learned, probe_seconds)


def save(s: Session, target: Path) -> None:
    """The trained weights with their description; an adapter also merged into the base when asked."""
    from babeltune.models import load_model

    job = s.job
    described = checkpoint.Checkpoint(job.model.name, job.method, job.model.template, job.model.dtype)
    s.model.save_pretrained(target)
    s.tokenizer.save_pretrained(target)
    checkpoint.describe(target, described)
    if s.method.adapter and job.train.merge_lora:
        # frozen weights cast for speed lost their low bits: merge into the base as it was loaded
        merged = (s.model if s.frozen_dtype is None else
                  load_model(job.model.name, job.model.dtype, adapter=target)).merge_and_unload()  # fmt: skip
        merged.save_pretrained(s.out_dir / "model")
        s.tokenizer.save_pretrained(s.out_dir / "model")
        checkpoint.describe(s.out_dir / "model", replace(described, method=WHOLE_MODEL))
    for folder in (target, s.out_dir / "model"):
        if folder.is_dir():
            honour_umask(folder)


def metrics(s: Session, o: Outcome) -> dict:
    useful = s.trainer.state.num_input_tokens_seen
    return {
        "examples": len(s.rows),
        "validation_examples": len(s.val),
        "probe": f"the {min(len(s.val or s.rows), PROBE_SIZE)} shortest {'validation' if s.val else 'training'} examples",
        "probe_seconds": round(o.probe_seconds, 2),
        "probe_loss_before": o.loss_before,
        "probe_loss_after": o.loss_after,
        "learned": o.learned,  # False: neither the probe loss nor the trained weights moved
        "best_checkpoint": s.trainer.state.best_model_checkpoint,
        "train_loss": o.result.training_loss,
        "steps": o.result.global_step,
        "resumed_from": o.resumed_from,
        "processes": s.trainer.args.world_size,
        "loss": "chunked" if s.loss_func else "model",
        "gradient_checkpointing": checkpointing_is_on(s.base),
        "precision": s.precision,
        "frozen_weights": s.frozen_dtype or s.job.model.dtype,  # the frozen linear weights' dtype
        "seconds": round(o.seconds, 2),
        "useful_tokens": useful,
        "tokens_per_second": round(useful / o.seconds, 1),
        "step_tokens_per_second": s.log.steady_rate(),
        "parameters": s.base_parameters,  # of the base model: the x axis of score-vs-size plots
        "trainable_parameters": sum(p.numel() for p in s.model.parameters() if p.requires_grad),
    }


def run(job: TrainJob, mixture: Path, out_dir: Path, launched: bool = False) -> Path:
    """Fine-tune ``job.model`` on the ``mixture`` file; returns the folder holding the adapter or model.
    ``launched``: this is one of the processes a launcher started (never launch again from here)."""
    target = weights_dir(out_dir, job.method)
    if job.train.nproc > 1 and not launched:
        launch_distributed(job, mixture, out_dir)
        return target
    check_world(job.train.nproc, world_size())
    out_dir.mkdir(parents=True, exist_ok=True)
    session = prepare(job, mixture, out_dir)
    build_trainer(session)
    outcome = train(session)
    if session.trainer.is_world_process_zero():
        save(session, target)
        write_json(out_dir / checkpoint.METRICS, metrics(session, outcome))
        shutil.rmtree(
            out_dir / "checkpoints", ignore_errors=True
        )  # finished: the saved weights are what counts
    return target
