"""Train stage: supervised fine-tuning on one mixture, with LoRA (PEFT) or all parameters (transformers Trainer).

Writes ``adapter/`` (LoRA, safetensors) or ``model/`` (full; also LoRA with ``merge_lora``), each with the
``babeltune.json`` that describes it, ``train_log.jsonl`` (one line per logged step, with useful =
non-padding tokens per second) and ``metrics.json`` (loss on a fixed probe set before and after training,
throughput of the whole run and of the steps alone). Checkpoints go to ``checkpoints/``; a killed run
resumes from the last one with the same data order.

With ``train.nproc > 1`` the run is relaunched under ``torchrun`` (data-parallel; gloo on CPU):
``python -m babeltune.train JOB.yaml OUT_DIR`` is the entry point each process runs.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from babeltune import checkpoint
from babeltune.cluster import preempt
from babeltune.data.schema import Example
from babeltune.io import atomic_write_text, honour_umask, read_jsonl, write_json
from babeltune.models import ModelArgs
from babeltune.precision import autocast_dtype, resolve_precision
from babeltune.registry import BabeltuneError
from babeltune.settings import dump_yaml, from_dict, load_yaml, setting
from babeltune.tasks import Output, Task
from babeltune.templates import build_training_text

PROBE_SIZE = 32  # examples whose loss is measured before and after training (without validation)
METRICS = "metrics.json"


@dataclass
class LoraArgs:
    r: int = setting(8, "LoRA rank", ge=1, le=4096)
    alpha: int = setting(16, "LoRA alpha", gt=0)
    dropout: float = setting(0.05, "LoRA dropout", ge=0, le=0.99)
    target_modules: list[str] | None = setting(None, "modules to adapt (default: per model family)")


@dataclass
class TrainArgs:
    methods: list[Literal["lora", "full"]] = setting(["lora"], "fine-tuning methods in the grid: lora, full")
    epochs: float = setting(2.0, "passes over the mixture", gt=0, le=10_000)
    max_steps: int | None = setting(
        None, "stop after this many optimizer steps (overrides epochs)", ge=1, le=10**9
    )
    learning_rate: float = setting(3e-4, "peak learning rate (the paper: 3e-4 for LoRA)", gt=0, le=10)
    full_learning_rate: float | None = setting(
        2e-5, "peak learning rate for full-parameter runs", gt=0, le=10
    )
    batch_size: int = setting(
        4,
        "micro-batch size per device (on CPU, 4 beat 8: 287 vs 250 tokens/s, 2.8 vs 4.9 GB)",
        ge=1,
        le=65536,
    )
    grad_accum: int = setting(
        2, "gradient accumulation steps (global batch = batch_size x grad_accum x devices)", ge=1, le=65536
    )
    max_length: int = setting(256, "truncate training sequences to this many tokens", ge=8, le=10**7)
    warmup_ratio: float = setting(0.05, "fraction of steps for linear warm-up", ge=0, le=0.99)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = setting(
        "auto",
        "mixed precision: auto = bf16 autocast where the hardware computes bf16 fast (recent CPUs, GPUs), "
        "decided on the machine that trains (metrics.json says what ran)",
    )
    scheduler: str = setting("cosine", "learning-rate schedule after warm-up: cosine, linear, constant, ...")
    loss_on_prompt: bool = setting(True, "also train on prompt tokens (the paper's LoRA runs did)")
    full_epochs: float | None = setting(
        None, "epochs for full-parameter runs (default: epochs; the paper: 3)", gt=0, le=10_000
    )
    full_loss_on_prompt: bool | None = setting(
        None, "loss on prompt tokens in full-parameter runs (the paper: false)"
    )
    full_nproc: int | None = setting(
        None, "processes (one per GPU) for full-parameter runs (default: nproc); LoRA runs keep nproc, so only "
        "the runs that need several GPUs ask Slurm for them", ge=1, le=4096)  # fmt: skip
    length_grouping: bool = setting(
        True, "batch sequences of similar length together (little compute spent on padding)"
    )
    chunked_loss: bool = setting(
        True,
        "compute the loss from the last hidden states in chunks, only where tokens have labels: the full "
        "logits tensor never exists (used where the model's logits are its plain linear head; checked; "
        "the same losses within 1e-4, so it redoes nothing)",
        affects_result=False,
    )
    gradient_checkpointing: bool = setting(
        False,
        "keep only each layer's input and recompute the rest in backward: activation memory down to a "
        "fraction, about a third more compute (for big models or long sequences on small GPUs)",
        affects_result=False,
    )
    val_size: float = setting(
        0.0, "held-out validation examples (count, or a fraction below 1); the paper: 1000", ge=0
    )
    eval_every: int | None = setting(
        None, "evaluate and checkpoint every N steps (default: every epoch)", ge=1
    )
    keep_best: bool = setting(True, "with validation: keep the checkpoint with the lowest validation loss")
    merge_lora: bool = setting(False, "also save the LoRA adapter merged into the base weights (model/)")
    report_to: list[str] = setting(
        [], "trackers for training metrics, e.g. [tensorboard, wandb] (off by default)", affects_result=False
    )
    nproc: int = setting(
        1, "processes for data-parallel training (torchrun; gloo on CPU, nccl on GPUs)", ge=1, le=4096
    )
    accelerate_config: str | None = setting(
        None, "an accelerate config (e.g. docs/accelerate/fsdp.yaml): runs on several processes start with "
        "`accelerate launch` under it instead of torchrun, so FSDP or ZeRO shard what one GPU cannot hold",
        affects_result=False)  # fmt: skip
    seed: int = setting(0, "training seed")
    threads: int | None = setting(
        None, "torch CPU threads (default: torch's choice)", affects_result=False, ge=1, le=4096
    )

    def for_method(self, method: str) -> TrainArgs:
        """The settings a ``method`` run trains with: the ``full_*`` fields are folded into their plain ones
        and cleared, and ``methods`` names this one, so a job holds no setting it does not use (and a
        LoRA run's key cannot change with a full-parameter setting). Applying it twice changes nothing.

        >>> t = TrainArgs(full_epochs=3, full_loss_on_prompt=False).for_method("full")
        >>> t.epochs, t.learning_rate, t.loss_on_prompt, t.full_learning_rate, t.methods
        (3, 2e-05, False, None, ['full'])
        >>> TrainArgs(full_epochs=3).for_method("lora").epochs, t.for_method("full") == t
        (2.0, True)
        >>> TrainArgs(full_nproc=4).for_method("full").nproc, TrainArgs(full_nproc=4).for_method("lora").nproc
        (4, 1)
        """
        full = method == "full"
        return replace(
            self,
            methods=[method],
            epochs=(self.full_epochs or self.epochs) if full else self.epochs,
            learning_rate=self.full_learning_rate if full and self.full_learning_rate else self.learning_rate,
            loss_on_prompt=self.full_loss_on_prompt
            if full and self.full_loss_on_prompt is not None
            else self.loss_on_prompt,
            nproc=(self.full_nproc or self.nproc) if full else self.nproc,
            full_epochs=None,
            full_learning_rate=None,
            full_loss_on_prompt=None,
            full_nproc=None,
        )


@dataclass
class TrainJob:
    """One training run: the model, the method and exactly the settings it trains with."""

    model: ModelArgs
    method: Literal["lora", "full"]
    lora: LoraArgs | None  # None for full-parameter runs
    train: TrainArgs

    def __post_init__(self) -> None:
        self.train = self.train.for_method(self.method)
        if self.method == "full":
            self.lora = None

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Path:
        return run(self, inputs["mixture"], out_dir)

    def locate(self, folder: Path, part: str) -> Path:
        return weights_dir(folder, self.method)


def weights_dir(out_dir: Path, method: str) -> Path:
    return out_dir / ("adapter" if method == "lora" else "model")


def metrics_file(weights: Path) -> Path:
    """The ``metrics.json`` of the training run whose weights are in ``weights``."""
    return weights.parent / METRICS


def task(model: ModelArgs, method: str, lora: LoraArgs, train: TrainArgs, mixture: Output, name: str) -> Task:
    job = TrainJob(model, method, lora, train)
    needs = {"train.accelerate_config": Path(train.accelerate_config)} if train.accelerate_config else {}
    return Task("train", name, job, {"mixture": mixture}, slug=name.replace("/", "-"), needs=needs)


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


def _cheaper_lora_steps(model, method: str, precision: str) -> str | None:
    """LoRA only: the integer-mask dropout, and frozen linear weights kept in the autocast dtype (not cast
    again each micro-batch; the same products). Returns that dtype's name when weights were cast."""
    if method != "lora":
        return None
    from babeltune import lora_speed

    lora_speed.cheap_dropout(model)
    dtype = autocast_dtype(precision)
    if dtype is None or not lora_speed.frozen_weights_in(model, dtype):
        return None
    return str(dtype).removeprefix("torch.")


def chunked_loss_function(model, rows: list[dict], collate, precision: str, wanted: bool):
    """The chunked-loss ``compute_loss_func`` when the config asks for it and the model passes the check."""

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
    return chunked_loss.loss_function(model.get_output_embeddings(), autocast_dtype(precision))


def with_model_outputs(collate):
    """Batches that also ask the model for its hidden states and the last position's logits only."""
    from babeltune.chunked_loss import MODEL_OUTPUTS

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


def _log_callback(path: Path, name: str):
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """One JSON line per logged step (useful tokens/s counts non-padding tokens only), and one progress
        bar per run: steps, loss, tokens/s and the time left."""

        def __init__(self):
            self.last = (time.perf_counter(), 0)
            self.rates: list[float] = []
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = tqdm(
                    total=state.max_steps, initial=state.global_step, desc=f"train {name}", unit="step"
                )

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

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
                if self.bar is not None:
                    self.bar.set_postfix(
                        loss=f"{float(row['loss']):.3f}", tokens_s=f"{rate:.0f}", refresh=False
                    )
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


def _epoch_seeded(trainer_class, seed: int):
    """A Trainer whose data order in each epoch is a function of (seed, epoch) alone. Transformers' samplers
    draw their permutation from the global random state when the epoch starts; a run resumed mid-epoch starts
    that epoch before the checkpoint's random state is restored, so it would skip batches of another order."""
    import torch
    from torch.utils.data import Sampler

    class EpochSeeded(Sampler):
        def __init__(self, inner):
            self.inner, self.generator = inner, torch.Generator()
            inner.generator = self.generator
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            self.generator.manual_seed(seed * 1_000_003 + int(epoch))

        def __iter__(self):
            return iter(self.inner)

        def __len__(self) -> int:
            return len(self.inner)

    class EpochSeededTrainer(trainer_class):
        def _get_train_sampler(self, *args, **kwargs):
            sampler = super()._get_train_sampler(*args, **kwargs)
            return EpochSeeded(sampler) if hasattr(sampler, "generator") else sampler

    return EpochSeededTrainer


def _stop_on_signal_callback():
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        """Slurm's warning signal or SIGTERM during training: finish this step, save a checkpoint (weights,
        optimizer, scheduler, random state, the position in the epoch) and stop; the rerun resumes there."""

        def on_step_end(self, args, state, control, **kwargs):
            if preempt.requested() and state.global_step < state.max_steps:
                control.should_save = True
                control.should_training_stop = True

    return StopOnSignal()


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


def training_arguments(job: TrainJob, out_dir: Path, validate: bool, steps: int):
    import torch
    from transformers import TrainingArguments

    cfg = job.train
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


CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint a kill did not cut short; half-written and unreadable ones are removed (and
    an unreadable one is said, since it looked complete)."""
    if not folder.is_dir():
        return None
    found = sorted(
        folder.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    for path in reversed(found):
        if all((path / name).exists() for name in CHECKPOINT_FILES):
            try:
                json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
                return str(path)
            except (ValueError, OSError) as err:
                print(f"{path}: unreadable trainer_state.json ({err}); skipped, resuming from an earlier "
                      "checkpoint or the start", file=sys.stderr)  # fmt: skip
        shutil.rmtree(path, ignore_errors=True)
    return None


def write_job_file(job: TrainJob, mixture: Path, path: Path) -> None:
    """A job file that ``python -m babeltune.train`` runs (the task's job.yaml has the same shape)."""
    atomic_write_text(path, dump_yaml({"inputs": {"mixture": {"path": str(mixture)}}, "job": job}))


def read_job_file(path: Path) -> tuple[TrainJob, Path]:
    data = load_yaml(Path(path).read_text(encoding="utf-8"))
    return from_dict(TrainJob, data["job"], f"{path}: job"), Path(data["inputs"]["mixture"]["path"])


def launch_distributed(job: TrainJob, mixture: Path, out_dir: Path) -> None:
    """Run this job with ``job.train.nproc`` processes on this machine: under torchrun (data-parallel), or
    ``accelerate launch`` with the ``train.accelerate_config`` it names (FSDP, ZeRO)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    job_file = out_dir / "torchrun_job.yaml"
    write_job_file(job, mixture, job_file)
    n, config = job.train.nproc, job.train.accelerate_config
    launcher = (["accelerate.commands.launch", "--config_file", config, "--num_processes", str(n)] if config
                else ["torch.distributed.run", "--standalone", f"--nproc_per_node={n}"])  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", *launcher, "-m", "babeltune.train", str(job_file), str(out_dir)]
    )
    if done.returncode != 0:
        raise BabeltuneError(f"train {out_dir.name}: the {launcher[0].split('.')[0]} launch of {n} processes failed "
                             f"(exit status {done.returncode}); its error is above")  # fmt: skip


def run(job: TrainJob, mixture: Path, out_dir: Path, launched: bool = False) -> Path:
    """Fine-tune ``job.model`` on the ``mixture`` file; returns the folder holding the adapter or model.
    ``launched``: this is one of the processes a launcher started (never launch again from here)."""
    target = weights_dir(out_dir, job.method)
    if job.train.nproc > 1 and not launched:
        launch_distributed(job, mixture, out_dir)
        return target
    check_world(job.train.nproc, int(os.environ.get("WORLD_SIZE", "1")))

    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer
    from transformers.trainer_callback import PrinterCallback

    from babeltune.models import load_model, load_tokenizer

    cfg = job.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    examples = [Example.from_dict(r) for r in read_jsonl(mixture)]
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
    precision = resolve_precision(cfg.precision, job.model.dtype)

    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "train_log.jsonl"
    checkpoints = out_dir / "checkpoints"
    resume = last_complete_checkpoint(checkpoints)
    if resume is None:
        log_path.unlink(missing_ok=True)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    loss_func = chunked_loss_function(model, rows, collate, precision, cfg.chunked_loss)
    frozen_dtype = _cheaper_lora_steps(model, job.method, precision)  # after the fp32 check just above
    if loss_func:  # the model returns hidden states and one position's logits; the loss does the rest
        collate = with_model_outputs(collate)
    log_callback = _log_callback(log_path, out_dir.name)
    callbacks = [log_callback]
    if not (val and cfg.keep_best):  # picking the best checkpoint needs the last one saved
        callbacks.append(_no_final_checkpoint_callback())
    callbacks.append(_stop_on_signal_callback())  # after the one above: a stop always saves
    world = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = _epoch_seeded(Trainer, cfg.seed)(
        model=model,
        args=training_arguments(job, out_dir, bool(val), optimizer_steps(len(rows), cfg, world)),
        train_dataset=rows,
        eval_dataset=val or None,
        data_collator=collate,
        compute_loss_func=loss_func,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # raw log dicts on the console: the bar says it better
    loss_before = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    weights_before = trainable_fingerprint(model)
    if resume is not None:
        step = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
        print(f"train {out_dir.name}: resuming from {Path(resume).name} (step {step} of "
              f"{optimizer_steps(len(rows), cfg, world)})", file=sys.stderr, flush=True)  # fmt: skip
    start = time.perf_counter()
    with preempt.checkpointable():
        result = trainer.train(resume_from_checkpoint=resume)
    if preempt.requested() and trainer.state.global_step < trainer.state.max_steps:
        print(f"train {out_dir.name}: stopped at step {trainer.state.global_step} of {trainer.state.max_steps}; "
              f"checkpoint-{trainer.state.global_step} saved", file=sys.stderr, flush=True)  # fmt: skip
        preempt.raise_if_requested()
    seconds = time.perf_counter() - start
    loss_after = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    learned = learned_anything(loss_before, loss_after, weights_before, trainable_fingerprint(model))
    if not learned and trainer.is_world_process_zero():
        print(f"babeltune: warning: training {out_dir.name} moved neither its loss ({loss_before:.4f} -> "
              f"{loss_after:.4f}) nor its weights: check train.learning_rate, warmup_ratio and the number of "
              "steps", file=sys.stderr)  # fmt: skip

    if trainer.is_world_process_zero():
        described = checkpoint.Checkpoint(job.model.name, job.method, job.model.template, job.model.dtype)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        checkpoint.describe(target, described)
        if job.method == "lora" and cfg.merge_lora:
            # frozen weights cast for speed lost their low bits: merge into the base as it was loaded
            merged = (model if frozen_dtype is None else
                      load_model(job.model.name, job.model.dtype, adapter=target)).merge_and_unload()  # fmt: skip
            merged.save_pretrained(out_dir / "model")
            tokenizer.save_pretrained(out_dir / "model")
            checkpoint.describe(out_dir / "model", replace(described, method="full"))
        for folder in (target, out_dir / "model"):
            if folder.is_dir():
                honour_umask(folder)
        useful = trainer.state.num_input_tokens_seen
        write_json(
            out_dir / METRICS,
            {
                "examples": len(rows),
                "validation_examples": len(val),
                "probe": "validation split" if val else f"first {len(probe)} training examples",
                "probe_loss_before": loss_before,
                "probe_loss_after": loss_after,
                "learned": learned,  # False: neither the probe loss nor the trained weights moved
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "train_loss": result.training_loss,
                "steps": result.global_step,
                "resumed_from": resume,
                "processes": trainer.args.world_size,
                "loss": "chunked" if loss_func else "model",
                "gradient_checkpointing": checkpointing_is_on(base),
                "precision": precision,
                "frozen_weights": frozen_dtype or job.model.dtype,  # the frozen linear weights' dtype
                "seconds": round(seconds, 2),
                "useful_tokens": useful,
                "tokens_per_second": round(useful / seconds, 1),
                "step_tokens_per_second": log_callback.steady_rate(),
                "parameters": base_parameters,  # of the base model: the x axis of score-vs-size plots
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            },
        )
        shutil.rmtree(checkpoints, ignore_errors=True)  # finished: the saved weights are what counts
    return target


def check_world(nproc: int, world: int) -> None:
    """The processes a launcher started are the ones the job's key counts (they set the global batch).

    >>> check_world(2, 1)
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: train.nproc is 2 but 1 process(es) were started: the launcher must start train.nproc processes (an accelerate config for CPUs starts one; use torchrun there)
    """
    if world != nproc:
        raise BabeltuneError(f"train.nproc is {nproc} but {world} process(es) were started: the launcher must start "
                             "train.nproc processes (an accelerate config for CPUs starts one; use torchrun there)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point for each process under torchrun / accelerate launch."""
    job_file, out_dir = (argv or sys.argv[1:])[:2]
    job, mixture = read_job_file(Path(job_file))
    try:
        run(job, mixture, Path(out_dir), launched=True)
    except BabeltuneError as err:
        print(f"babeltune: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
