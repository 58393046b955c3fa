"""Trainer callbacks and the trainer's data order: the log and progress bar, no checkpoint at the end, a stop
on Slurm's warning signal, and an epoch order that a resumed run reproduces."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from babeltune import preempt


def log_callback(path: Path, name: str):
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


def no_final_checkpoint_callback():
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


def epoch_seeded(trainer_class, seed: int):
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


def stop_on_signal_callback():
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        """Slurm's warning signal or SIGTERM during training: finish this step, save a checkpoint (weights,
        optimizer, scheduler, random state, the position in the epoch) and stop; the rerun resumes there."""

        def on_step_end(self, args, state, control, **kwargs):
            if preempt.requested() and state.global_step < state.max_steps:
                control.should_save = True
                control.should_training_stop = True

    return StopOnSignal()
