"""What answers: the weights to load, an adapter to attach, the template it was trained with and its dtype,
read from a checkpoint's own description (``babeltune.json``) wherever there is one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from babeltune import checkpoint
from babeltune.models import ModelArgs


@dataclass(frozen=True)
class Target:
    weights: str
    adapter: Path | None = None
    template: str = "alpaca"
    dtype: str = "float32"

    @classmethod
    def base(cls, model: ModelArgs) -> Target:
        return cls(model.name, None, model.template, model.dtype)

    @classmethod
    def of(cls, folder: Path) -> Target:
        """The checkpoint in ``folder``, as its own description tells it."""
        described = checkpoint.read(folder)
        weights, adapter = described.weights(folder)
        return cls(weights, adapter, described.template, described.dtype)

    @classmethod
    def locate(cls, source: str, base: str | None = None, template: str | None = None) -> Target:
        """What ``source`` names: a babeltune checkpoint or training folder (adapter or full model: its
        description gives the base, template and dtype), a PEFT adapter folder (on ``base``, else the base
        its config names), a model folder, ``builtin:...`` or a hub id."""
        path = Path(source)
        found = checkpoint.find(path)
        if found is not None:
            described = cls.of(found)
            return cls(described.weights, described.adapter, template or described.template, described.dtype)
        if (path / "adapter_config.json").exists():
            named = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
            return cls(base or named, path, template or "alpaca")
        return cls(base or source, None, template or "alpaca")
