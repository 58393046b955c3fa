"""Bounded retries with exponential backoff and full jitter, for calls to remote endpoints."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from babeltune.secrets import redact

T = TypeVar("T")


@dataclass
class Usage:
    """Calls, retries and tokens spent on an endpoint or model, safe to update from worker threads."""

    calls: int = 0  # model forward batches or HTTP requests
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("calls", "retries", "input_tokens", "output_tokens")}


class GaveUp(Exception):
    """All attempts failed; ``reason`` says why the last one did."""

    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason, self.attempts = reason, attempts


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random = random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)].

    >>> all(0 <= backoff_delay(a, 0.5, 4.0) <= min(4.0, 0.5 * 2**a) for a in range(8))
    True
    """
    return rng.uniform(0, min(cap, base * 2**attempt))


def call_with_retries(
    fn: Callable[[], T],
    is_retryable: Callable[[Exception], bool],
    max_retries: int,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    on_retry: Callable[[Exception], None] = lambda err: None,
) -> T:
    """Call ``fn``; retry retryable errors up to ``max_retries`` times, then raise GaveUp."""
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - classified right below
            if not is_retryable(err) or attempt == max_retries:
                # redact, then cut: a cut first would leave part of an echoed key for redaction to miss
                raise GaveUp(redact(f"{type(err).__name__}: {err}")[:200], attempt + 1) from err
            on_retry(err)
            time.sleep(backoff_delay(attempt, base_delay, max_delay))
    raise AssertionError("unreachable")


def openai_retryable(err: Exception) -> bool:
    """429, 5xx, timeouts and dropped connections are worth another try; other 4xx are not."""
    import openai

    if isinstance(err, openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
        return True
    if isinstance(err, openai.APIStatusError):
        return err.status_code >= 500 or err.status_code == 408
    return isinstance(err, ValueError | KeyError | IndexError | TypeError)  # malformed body
