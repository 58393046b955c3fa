"""An OpenAI-compatible endpoint serving the tuned model (``babeltune serve``, vLLM, ...) as an engine."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from babeltune.endpoints import reply_text
from babeltune.inference.decoding import Decoding, prompt_seed
from babeltune.inference.engine import ENGINES, Answer, Engine, Prompt
from babeltune.inference.target import Target
from babeltune.registry import BabeltuneError
from babeltune.templates import build_prompt, template


@ENGINES.register("openai")
class OpenAIEngine(Engine):
    """A template whose training prompt an endpoint reproduces exactly (alpaca) goes through
    /v1/completions with that text; the chat template through /v1/chat/completions, where the server applies
    the model's own chat template. Requests run ``concurrency`` at a time, each answer kept as it arrives."""

    name = "openai"
    local = False

    def refuses(self, decoding: Decoding) -> str | None:
        if decoding.num_beams > 1:
            return (
                "generate.num_beams: an OpenAI-compatible endpoint does not search beams (set 1, or use hf)"
            )
        if decoding.no_repeat_ngram_size:
            return "generate.no_repeat_ngram_size: the OpenAI API has no n-gram ban (set 0, or use hf)"
        if decoding.repetition_penalty != 1.0:
            return "generate.repetition_penalty: the OpenAI API has none (set 1.0, or use hf)"
        return None

    def load(self, target: Target, run_name: str) -> None:
        from babeltune.retry import Usage

        self.target, self.endpoint, self.usage = target, self.settings.connect("generate"), Usage()
        self.model = self.settings.model or run_name
        self.precision = "the endpoint's"

    def _call(self, p: Prompt, decoding: Decoding) -> Answer:
        from babeltune.retry import GaveUp

        client = self.endpoint.client
        own = {"model": self.model, "max_tokens": decoding.max_new_tokens, "top_p": decoding.top_p,
               "temperature": decoding.temperature if decoding.do_sample else 0, "stop": decoding.stop or None,
               "seed": prompt_seed(decoding, p.id)}  # fmt: skip
        if p.messages:  # a conversation of its own (a judge's)
            text, messages = p.messages[-1]["content"], list(p.messages)
            call = lambda: reply_text(client.chat.completions.create(messages=messages, **own))  # noqa: E731
        elif template(self.target.template).endpoint == "completions":  # the exact training prompt
            text = build_prompt(self.target.template, None, p.text)
            call = lambda: reply_text(client.completions.create(prompt=text, **own), chat=False)  # noqa: E731
        else:
            text, messages = p.text, [{"role": "user", "content": p.text}]
            call = lambda: reply_text(client.chat.completions.create(messages=messages, **own))  # noqa: E731
        try:
            return Answer(text, self.endpoint.call(call, self.usage) or "", -1)
        except GaveUp as err:
            raise BabeltuneError(
                f"generate: {self.settings.base_url} failed for {p.id}: {err.reason}"
            ) from None

    def answer(self, prompts: list[Prompt], decoding: Decoding) -> Iterator[tuple[Prompt, Answer]]:
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            pending = {pool.submit(self._call, p, decoding): p for p in prompts}
            try:
                for future in as_completed(pending):
                    yield pending[future], future.result()
            finally:
                for future in pending:
                    future.cancel()
