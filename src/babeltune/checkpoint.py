"""A checkpoint describes itself: a small ``babeltune.json`` beside its weights says what base model it
tunes, with which prompt template, method and dtype. Generation and serving read that, never the trainer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from babeltune.io import write_json
from babeltune.methods import METHODS
from babeltune.registry import BabeltuneError

DESCRIPTION = "babeltune.json"
METRICS = "metrics.json"  # what the training run measured, beside its weights folder


def metrics_file(weights: Path) -> Path:
    """The ``metrics.json`` of the training run whose weights are in ``weights``."""
    return weights.parent / METRICS


@dataclass(frozen=True)
class Checkpoint:
    base_model: str  # what training started from: builtin:..., a folder or a hub id
    method: (
        str  # a fine-tuning method: the folder is an adapter of base_model if the method's is, else a model
    )
    template: str  # the prompt template it was trained with
    dtype: str  # weights dtype it was trained in

    def weights(self, folder: Path) -> tuple[str, Path | None]:
        """(model to load, adapter to attach or None) for the checkpoint in ``folder``."""
        return (self.base_model, folder) if METHODS.get(self.method).adapter else (str(folder), None)


def describe(folder: Path, checkpoint: Checkpoint) -> None:
    write_json(Path(folder) / DESCRIPTION, asdict(checkpoint))


def read(folder: Path) -> Checkpoint:
    path = Path(folder) / DESCRIPTION
    try:
        return Checkpoint(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise BabeltuneError(f"{folder}: not a babeltune checkpoint (no {DESCRIPTION})") from None
    except (ValueError, TypeError) as err:
        raise BabeltuneError(f"{path}: unreadable checkpoint description ({err})") from None


def find(folder: Path) -> Path | None:
    """The checkpoint in a folder: the folder itself, or a training task's ``adapter/`` or ``model/``."""
    folder = Path(folder)
    for candidate in (folder, folder / "adapter", folder / "model"):
        if (candidate / DESCRIPTION).exists():
            return candidate
    return None
