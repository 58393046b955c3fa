"""OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp, Ollama, ``babeltune serve``): one settings group,
one client, one retry policy, for the judge, translation and generation alike.

None of these settings can change a result (they say where and how fast, never what), so none is in a key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from babeltune.registry import BabeltuneError
from babeltune.retry import GaveUp, Usage, call_with_retries, openai_retryable
from babeltune.secrets import redact, remember
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
    concurrency: int = setting(
        8, "openai backend: requests in flight at once", affects_result=False, ge=1, le=1024
    )
    max_retries: int = setting(
        4,
        "openai backend: retries per request on 429/5xx/timeouts, with exponential backoff and jitter",
        affects_result=False,
        ge=0,
        le=100,
    )
    timeout: float = setting(60.0, "openai backend: seconds per request", affects_result=False, gt=0)
    price_per_million_input: float = setting(
        0.0,
        "openai backend: price per million prompt tokens, for the cost summary",
        affects_result=False,
        ge=0,
    )
    price_per_million_output: float = setting(
        0.0, "openai backend: price per million completion tokens", affects_result=False, ge=0
    )

    def connect(self, where: str) -> Endpoint:
        """A connection to this endpoint for one stage; ``where`` (e.g. ``evaluate.judge``) names its settings."""
        return Endpoint(self, where)

    def cost(self, usage: Usage) -> float:
        spent = (
            usage.input_tokens * self.price_per_million_input
            + usage.output_tokens * self.price_per_million_output
        )
        return round(spent / 1e6, 6)


class MalformedReply(ValueError):
    """A 200 reply without what a reply must hold: retried like a failed call, then recorded as this."""


def reply_text(reply: object, chat: bool = True) -> str:
    """The text of a chat (or completions) reply, or MalformedReply saying what is missing.

    >>> reply_text(type("Reply", (), {"choices": None})())
    Traceback (most recent call last):
    babeltune.endpoints.MalformedReply: the reply has no choices
    """
    choices = getattr(reply, "choices", None)
    if not choices:
        raise MalformedReply("the reply has no choices")
    text = (
        choices[0].message.content
        if chat and getattr(choices[0], "message", None)
        else getattr(choices[0], "text", None)
    )
    if text is None:
        raise MalformedReply("the reply's first choice has no text")
    return text


class Endpoint:
    """One stage's connection: an OpenAI client (its own retries off: ours are bounded, counted and
    jittered) and the retry policy. A refused key, a missing route and an unreachable server are not item
    failures: the first one stops every call of the stage at once, with one line naming what to fix."""

    def __init__(self, cfg: EndpointArgs, where: str):
        from openai import OpenAI

        if not cfg.base_url:
            raise BabeltuneError(f"{where}.base_url: required for the openai backend")
        key = "none"  # the client insists on a string; a keyless server ignores it
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env, "")
            if not key:
                raise BabeltuneError(
                    f"{where}.api_key_env: environment variable {cfg.api_key_env} is not set (null: no key)"
                )
            remember(key)
        self.cfg, self.where = cfg, where
        self.client = OpenAI(base_url=cfg.base_url, api_key=key, max_retries=0, timeout=cfg.timeout)
        self.stopped: BabeltuneError | None = None
        self.answered = (
            0  # requests it has answered: a refusal before any is the request's fault, not an item's
        )

    def call(self, fn: Callable[[], T], usage: Usage) -> T:
        """``fn`` under the retry policy, counting calls and retries; an item that keeps failing raises
        GaveUp (the item failed), a fault of the endpoint itself raises BabeltuneError (the stage stops)."""
        if self.stopped:
            raise self.stopped

        def attempt() -> T:
            usage.add(calls=1)
            return fn()

        try:
            answer = call_with_retries(
                attempt, openai_retryable, self.cfg.max_retries, on_retry=lambda e: usage.add(retries=1)
            )
            self.answered += 1
            return answer
        except GaveUp as err:
            fatal = self.fatal(err.__cause__)
            if fatal is None:
                raise
            self.stopped = BabeltuneError(redact(fatal))
            raise self.stopped from None

    def fatal(self, err: BaseException | None) -> str | None:
        """The line to stop the stage with, when ``err`` is the endpoint's fault rather than one item's."""
        import openai

        url, key = self.cfg.base_url, self.cfg.api_key_env
        if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
            fix = f"the key in ${key}" if key else f"no key (set {self.where}.api_key_env)"
            return f"{self.where}: {url} refused {fix} ({err.status_code}); nothing more was sent"
        if isinstance(err, openai.NotFoundError):
            return f"{self.where}: {url} answered 404 Not Found: check {self.where}.base_url and {self.where}.model"
        if isinstance(err, openai.APIConnectionError) and not isinstance(err, openai.APITimeoutError):
            return f"{self.where}: cannot reach {url} ({type(err).__name__}); check {self.where}.base_url"
        permanent = isinstance(err, openai.APIStatusError) and 400 <= err.status_code < 500
        if permanent and err.status_code not in (408, 429) and not self.answered:
            # refused before it answered anything: a parameter it refuses (max_tokens over its limit, say) is
            # refused for every item, a rerun cannot succeed, and a judgement counted "unparsable" would pass
            # for the judge's own failure. (After some answers, a refusal is that one item's.)
            said = re.sub(r"^Error code: \d+ - ", "", " ".join(str(getattr(err, "message", err)).split()))[
                :300
            ]
            return (f"{self.where}: {url} refused the request ({err.status_code}): {said}; change the setting it "
                    "names (not retried)")  # fmt: skip
        return None
