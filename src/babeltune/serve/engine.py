"""The model behind ``babeltune serve``: loaded with the template it was trained with, answering waiting
requests together in batches, one generation at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from babeltune.inference.decoding import Decoding
from babeltune.inference.hf import load_for_inference
from babeltune.inference.target import Target
from babeltune.precision import inference_bf16


@dataclass
class _Request:
    texts: list[str]
    gen: Decoding
    done: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[str, int]] | None = None
    error: BaseException | None = None
    cancelled: threading.Event | None = None  # its client hung up


class Gone(Exception):
    """The request's client hung up before its answer was made."""


@dataclass(frozen=True)
class AllCancelled:
    """Stops a batch's generation once every request in it has been cancelled (one left: it goes on)."""

    events: tuple[threading.Event | None, ...]

    def is_set(self) -> bool:
        return all(e is not None and e.is_set() for e in self.events)


@dataclass
class ServedModel:
    """The model behind the endpoint. Requests that arrive while it is busy wait together, and the next
    generation answers all of them that share decoding settings in one batch (up to ``max_batch`` prompts):
    concurrent clients such as a judge with 16 requests in flight get batched throughput."""

    name: str
    template: str
    tokenizer: object
    model: object
    bf16: bool
    max_batch: int = 16
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generation at a time
    waiting: list[_Request] = field(default_factory=list)
    waiting_lock: threading.Lock = field(default_factory=threading.Lock)
    generations: int = 0  # model.generate calls so far

    def _generate(
        self,
        texts: list[str],
        gen: Decoding,
        streamer=None,
        cancelled=None,
        seeds: list[int] | None = None,
    ) -> list[tuple[str, int]]:
        from babeltune.inference.hf import generate_batch

        self.generations += 1
        return generate_batch(self.model, self.tokenizer, texts, gen, self.bf16, seeds, streamer, cancelled)

    def _answer(self, batch: list[_Request], gen: Decoding) -> None:
        """One generation for the batch; if it fails, each request alone, so one bad prompt fails only itself."""
        try:
            # each request samples from its own seed, whatever other requests share the batch
            seeds = [gen.seed + i for r in batch for i in range(len(r.texts))]
            cancelled = AllCancelled(tuple(r.cancelled for r in batch))
            answers = self._generate(
                [t for r in batch for t in r.texts], gen, cancelled=cancelled, seeds=seeds
            )
        except Exception as err:  # noqa: BLE001 - retried one by one below
            if len(batch) == 1:
                batch[0].error = err
                batch[0].done.set()
                return
            for r in batch:
                self._answer([r], gen)
            return
        for r in batch:
            r.answers, answers = answers[: len(r.texts)], answers[len(r.texts) :]
            r.done.set()

    def _take_batch(self, gen: Decoding) -> list[_Request]:
        """The waiting requests with decoding settings ``gen``, oldest first, up to ``max_batch`` prompts."""
        with self.waiting_lock:
            batch, size = [], 0
            for r in self.waiting:
                if r.cancelled is not None and r.cancelled.is_set():  # its client left while it waited
                    r.error = Gone()
                    r.done.set()
                    batch.append(r)  # taken off the queue, answered by no one
                    continue
                if r.gen == gen and (not batch or size + len(r.texts) <= self.max_batch):
                    batch.append(r)
                    size += len(r.texts)
            self.waiting = [r for r in self.waiting if not any(r is b for b in batch)]
            return [r for r in batch if not r.done.is_set()]

    def complete(
        self, texts: list[str], gen: Decoding, streamer=None, cancelled: threading.Event | None = None
    ) -> list[tuple[str, int]]:
        """Answers to ``texts``; setting ``cancelled`` (the client hung up) stops their generation at the next
        token, or the whole batch's when every request in it is cancelled. A stream (``streamer``) runs alone."""
        if streamer is not None:  # a stream follows one request's tokens: it runs alone
            with self.lock:
                return self._generate(texts, gen, streamer, cancelled)
        mine = _Request(texts, gen, cancelled=cancelled)
        with self.waiting_lock:
            self.waiting.append(mine)
        while not mine.done.is_set():
            with self.lock:
                if not mine.done.is_set():  # else the previous holder answered it
                    batch = self._take_batch(gen)
                    if batch:
                        self._answer(batch, gen)
        if mine.error is not None:
            raise mine.error
        return mine.answers


def served_name(source: str, name: str | None = None) -> str:
    """The model id clients ask for: ``name``, else the source folder's name, else the source itself."""
    path = Path(source)
    return name or (path.name if path.exists() else source)


def load(
    source: str, base: str | None = None, template: str | None = None, name: str | None = None
) -> ServedModel:
    """The in-house engine for what ``source`` names (see ``Target.locate``), loaded as the generate stage
    loads it: the checkpoint's dtype, its adapter unmerged, the one precision rule."""
    target = Target.locate(source, base, template)
    tokenizer, model = load_for_inference(target)
    bf16 = inference_bf16("auto", target.dtype)
    return ServedModel(served_name(source, name), target.template, tokenizer, model, bf16)
