"""A grid point's place on the sweep's axes, in words: the part of its name the sweep adds."""

from __future__ import annotations

from typing import Any

SEED = "train.seed"  # the axis ``seeds`` sweeps


def shown(value: Any) -> str:
    """
    >>> shown(1e-4), shown(["en", "es"]), shown(True), shown({"en": 0.5, "de": 0.1})
    ('0.0001', 'en+es', 'True', 'en:0.5+de:0.1')
    """
    if isinstance(value, dict):
        return "+".join(f"{k}:{v}" for k, v in value.items())
    return "+".join(map(str, value)) if isinstance(value, list) else str(value)


def label(values: dict[str, Any]) -> str:
    """``learning_rate=0.0001,seed=1`` for {train.learning_rate: 1e-4, train.seed: 1}; "" without axes."""
    return ",".join(f"{path.rsplit('.', 1)[-1]}={shown(v)}" for path, v in values.items())


def without_seed(values: dict[str, Any]) -> dict[str, Any]:
    return {path: v for path, v in values.items() if path != SEED}
