"""Training data: token ids and labels per example, and the held-out validation split."""

from __future__ import annotations

import heapq
import random

from babeltune.records import Example
from babeltune.registry import BabeltuneError
from babeltune.templates import build_training_text

PROBE_SIZE = 4  # examples whose loss is measured before and after training: a fixed small batch


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


def probe_rows(rows: list[dict]) -> list[dict]:
    """The probe: the ``PROBE_SIZE`` shortest rows (first among equals), so that measuring the loss before
    and after training costs little next to even a short run, whatever the data's size.

    >>> [len(r["input_ids"]) for r in probe_rows([{"input_ids": [0] * n} for n in (9, 3, 7, 3, 5, 8)])]
    [3, 3, 5, 7]
    """
    return heapq.nsmallest(PROBE_SIZE, rows, key=lambda r: len(r["input_ids"]))
