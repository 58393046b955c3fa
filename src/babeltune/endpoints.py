"""OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp, Ollama, ``babeltune serve``): one settings group,
one client, one retry policy, for the judge, translation and generation alike.

None of these settings can change a result (they say where and how fast, never what), so none is in a key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from babeltune.registry import BabeltuneError
from babeltune.retry import Usage, call_with_retries, openai_retryable
from babeltune.settings import setting

T = TypeVar("T")


@dataclass
class EndpointArgs:
    base_url: str | None = setting(
        None, "openai backend: the endpoint, e.g. http://127.0.0.1:8000/v1", affects_result=False
    )
    api_key_env: str | None = setting(
        "OPENAI_API_KEY",
        "openai backend: environment variable holding the API key (the key is never stored); null for a "
        "server that needs none",
        affects_result=False,
    )
    concurrency: int = setting(8, "openai backend: requests in flight at once", affects_result=False)
    max_retries: int = setting(
        4,
        "openai backend: retries per request on 429/5xx/timeouts, with exponential backoff and jitter",
        affects_result=False,
    )
    timeout: float = setting(60.0, "openai backend: seconds per request", affects_result=False)
    price_per_million_input: float = setting(
        0.0, "openai backend: price per million prompt tokens, for the cost summary", affects_result=False
    )
    price_per_million_output: float = setting(
        0.0, "openai backend: price per million completion tokens", affects_result=False
    )

    def client(self, where: str):
        """An OpenAI client for this endpoint; its own retries are off (ours are bounded, counted, jittered)."""
        from openai import OpenAI

        if not self.base_url:
            raise BabeltuneError(f"{where}.base_url: required for the openai backend")
        key = "none"  # the client insists on a string; a keyless server ignores it
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "")
            if not key:
                raise BabeltuneError(
                    f"{where}.api_key_env: environment variable {self.api_key_env} is not set (null: no key)"
                )
        return OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=self.timeout)

    def call(self, fn: Callable[[], T], usage: Usage) -> T:
        """``fn`` with this endpoint's retry policy, counting calls and retries; raises GaveUp."""

        def attempt() -> T:
            usage.add(calls=1)
            return fn()

        return call_with_retries(
            attempt, openai_retryable, self.max_retries, on_retry=lambda e: usage.add(retries=1)
        )

    def cost(self, usage: Usage) -> float:
        spent = (
            usage.input_tokens * self.price_per_million_input
            + usage.output_tokens * self.price_per_million_output
        )
        return round(spent / 1e6, 6)
