"""The training settings: the ``lora`` and ``train`` groups of an experiment."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from babeltune.methods import METHODS, override_fields
from babeltune.registry import BabeltuneError, check_names
from babeltune.settings import setting

COMMON_SCHEDULERS = (
    "cosine",
    "linear",
    "constant",
    "constant_with_warmup",
    "cosine_with_restarts",
    "polynomial",
)


@dataclass
class LoraArgs:
    r: int = setting(8, "LoRA rank", ge=1, le=4096)
    alpha: int = setting(16, "LoRA alpha", gt=0)
    dropout: float = setting(0.05, "LoRA dropout", ge=0, le=0.99)
    target_modules: list[str] | None = setting(None, "modules to adapt (default: per model family)")


@dataclass
class TrainArgs:
    methods: list[str] = setting(["lora"], f"fine-tuning methods in the grid: {', '.join(METHODS.names())}",
                                 nonempty=True, distinct=True)  # fmt: skip
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
    seed: int = setting(0, "training seed", ge=0, le=2**32 - 1)
    threads: int | None = setting(
        None, "torch CPU threads (default: torch's choice)", affects_result=False, ge=1, le=4096
    )

    @classmethod
    def spelled_flat(cls, data: dict, where: str) -> dict:
        """A method's own settings may be written nested under its name: ``full: {epochs: 3}`` is
        ``full_epochs: 3`` (both spellings are accepted; the flat one is what a dump shows).

        >>> TrainArgs.spelled_flat({"epochs": 2, "full": {"epochs": 3, "nproc": 4}}, "train")
        {'epochs': 2, 'full_epochs': 3, 'full_nproc': 4}
        >>> TrainArgs.spelled_flat({"full": {"scheduler": "linear"}}, "train")
        Traceback (most recent call last):
        babeltune.registry.BabeltuneError: train.full.scheduler: full runs have no setting of their own named 'scheduler'; they have: epochs, learning_rate, loss_on_prompt, nproc
        >>> TrainArgs.spelled_flat({"full": {"epochs": 3}, "full_epochs": 2}, "train")
        Traceback (most recent call last):
        babeltune.registry.BabeltuneError: train.full.epochs: given twice (also as train.full_epochs)
        """
        out = {}
        for key, value in data.items():
            method = METHODS.get(key) if key in METHODS.names() and isinstance(value, dict) else None
            if method is None:
                out[key] = value
                continue
            for name, v in value.items():
                flat = method.overrides.get(name)
                if flat is None:
                    raise BabeltuneError(
                        f"{where}.{key}.{name}: {key} runs have no setting of their own named {name!r}; "
                        f"they have: {', '.join(sorted(method.overrides)) or 'none'}"
                    )
                if flat in data:
                    raise BabeltuneError(f"{where}.{key}.{name}: given twice (also as {where}.{flat})")
                out[flat] = v
        return out

    def for_method(self, method: str) -> TrainArgs:
        """The settings a ``method`` run trains with: the method's override fields (``full_*`` for full) are
        folded into their plain ones and every method's are cleared, and ``methods`` names this one, so a job holds no setting it does not use (and a
        LoRA run's key cannot change with a full-parameter setting). Applying it twice changes nothing.

        >>> t = TrainArgs(full_epochs=3, full_loss_on_prompt=False).for_method("full")
        >>> t.epochs, t.learning_rate, t.loss_on_prompt, t.full_learning_rate, t.methods
        (3, 2e-05, False, None, ['full'])
        >>> TrainArgs(full_epochs=3).for_method("lora").epochs, t.for_method("full") == t
        (2.0, True)
        >>> TrainArgs(full_nproc=4).for_method("full").nproc, TrainArgs(full_nproc=4).for_method("lora").nproc
        (4, 1)
        """
        chosen = METHODS.get(method)
        own = {
            plain: getattr(self, o) for plain, o in chosen.overrides.items() if getattr(self, o) is not None
        }
        return replace(self, methods=[method], **own, **dict.fromkeys(override_fields()))

    def check(self, where: str) -> None:
        for i, name in enumerate(self.methods):
            check_names(where, **{f"methods[{i}]": lambda name=name: METHODS.get(name)})
        if self.scheduler not in COMMON_SCHEDULERS:  # the rest: ask transformers (an import of a second)
            from transformers import SchedulerType

            names = [s.value for s in SchedulerType]
            if self.scheduler not in names:
                raise BabeltuneError(
                    f"{where}.scheduler: {self.scheduler!r} is not one of {', '.join(names)}"
                )
