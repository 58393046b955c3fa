"""transformers inference: one loader for every user (the generate stage, ``serve``, the local judge,
the benchmarks) and batched generation where each sampled prompt draws from its own seed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cache

from babeltune.inference.decoding import Decoding, length_sorted_batches, prompt_seed
from babeltune.inference.engine import ENGINES, Answer, Engine, Prompt
from babeltune.inference.target import Target
from babeltune.precision import PRECISION_OF, inference_bf16


def load_for_inference(target: Target):
    """(tokenizer, model) for ``target``: weights in the checkpoint's dtype, its adapter attached (not
    merged), left padding for batches, evaluation mode, on the GPU when there is one."""
    import torch

    from babeltune.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(target.weights, padding_side="left")
    model = load_model(target.weights, target.dtype, adapter=target.adapter).eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return tokenizer, model


@cache
def cached_for_inference(name: str):
    """``load_for_inference`` of what ``name`` names, once per process: the local judge and the causal
    translator load their model so (one model serving both is loaded once). It computes in its weights'
    dtype, never under autocast: its output must not depend on the machine it ran on."""
    return load_for_inference(Target.locate(name))


def per_row_sampler(seeds: list[int]):
    """A last logits processor that draws each row's next token from that row's own random stream and leaves
    only it possible; ``generate``'s own draw then picks it. So a sampled answer depends on its prompt's seed,
    not on the batch it was generated in."""
    import torch
    from transformers import LogitsProcessor

    class PerRowSampler(LogitsProcessor):
        def __init__(self):
            self.streams = [torch.Generator().manual_seed(seed % 2**64) for seed in seeds]

        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.double(), dim=-1).cpu()
            draws = torch.stack([torch.rand(1, generator=g, dtype=torch.float64) for g in self.streams])
            cumulative = probs.cumsum(dim=-1)
            chosen = torch.searchsorted(cumulative, draws * cumulative[:, -1:]).clamp(
                max=scores.shape[-1] - 1
            )
            forced = torch.full_like(scores, float("-inf"))
            return forced.scatter_(1, chosen.to(scores.device), 0.0)

    return PerRowSampler()


def beam_sampling(gen: Decoding) -> bool:
    """Sampled beams draw from one random stream for the whole batch: such prompts go one at a time."""
    return gen.do_sample and gen.num_beams > 1


def generate_batch(
    model, tokenizer, texts: list[str], gen: Decoding, bf16: bool, seeds: list[int] | None = None,
    streamer=None, cancelled: threading.Event | None = None,
):  # fmt: skip
    """Generate for one batch of prompt texts; returns [(decoded new text, new token count)]. Sampling draws
    each text's tokens from its own seed (default: seed + its position). Setting ``cancelled`` stops the
    generation at its next token (a client that hung up)."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full(
                (input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool, device=input_ids.device
            )

    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    seeds = seeds if seeds is not None else [gen.seed + i for i in range(len(texts))]
    sampler = [per_row_sampler(seeds)] if gen.do_sample and not beam_sampling(gen) else []
    if beam_sampling(gen):
        assert len(texts) == 1, "sampled beams are generated one prompt at a time"
        torch.manual_seed(seeds[0])
    with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model.generate(
            **enc,
            max_new_tokens=gen.max_new_tokens,
            do_sample=gen.do_sample,
            temperature=gen.temperature if gen.do_sample else None,
            top_p=gen.top_p if gen.do_sample else None,
            num_beams=gen.num_beams,
            no_repeat_ngram_size=gen.no_repeat_ngram_size or None,
            repetition_penalty=gen.repetition_penalty,
            stop_strings=gen.stop or None,  # finished answers stop costing compute
            tokenizer=tokenizer,
            pad_token_id=tokenizer.pad_token_id,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([Cancelled()]) if cancelled else None,
            logits_processor=LogitsProcessorList(sampler),
        )
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    return [(decode_answer(tokenizer, ids), int((ids != tokenizer.pad_token_id).sum())) for ids in new_tokens]


def decode_answer(tokenizer, ids) -> str:
    """The text of generated token ids. A token limit can cut a character in two, whose half decodes to
    U+FFFD: no answer means to end in it, so it goes."""
    return tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")


@ENGINES.register("hf")
class HfEngine(Engine):
    """transformers ``generate``: left padding, length-sorted batches, KV cache, stop strings, LoRA unmerged."""

    name = "hf"

    def load(self, target: Target, run_name: str) -> None:
        self.target = target
        self.tokenizer, self.model = load_for_inference(target)
        self.bf16 = inference_bf16(self.settings.precision, target.dtype)
        self.precision = "bf16" if self.bf16 else PRECISION_OF[target.dtype]

    def answer(self, prompts: list[Prompt], decoding: Decoding) -> Iterator[tuple[Prompt, Answer]]:
        texts = {p.id: self.prompt_text(p) for p in prompts}
        size = 1 if beam_sampling(decoding) else self.settings.batch_size
        for batch in length_sorted_batches(prompts, lambda p: len(texts[p.id]), size):
            seeds = [prompt_seed(decoding, p.id) for p in batch]
            done = generate_batch(
                self.model, self.tokenizer, [texts[p.id] for p in batch], decoding, self.bf16, seeds
            )
            for p, (text, n_tokens) in zip(batch, done, strict=True):
                yield p, Answer(texts[p.id], text, n_tokens)
