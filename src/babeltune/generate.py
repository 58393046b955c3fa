"""Generate stage: every tuned model answers every test prompt, batched, resumable, shardable.

Answers are appended to ``responses.jsonl`` as batches finish, so a killed run continues where it
stopped. With a shard ``i/n`` a process answers every n-th prompt into ``responses.shard-i-of-n.jsonl``;
an unsharded run counts the shards' answers as done and merges them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from babeltune.config import GenerateArgs, ModelArgs
from babeltune.data.schema import TestPrompt
from babeltune.io import AppendLog, read_complete_jsonl, read_jsonl
from babeltune.registry import BabeltuneError, Registry
from babeltune.templates import build_prompt


@dataclass
class GenerateJob:
    prompts: Path  # test_prompts.jsonl
    model: ModelArgs
    adapter: Path | None  # LoRA adapter folder, or None
    checkpoint: Path | None  # full fine-tuned model folder, or None (then the base model)
    run_name: str  # recorded in each response, e.g. "smollm2-135m/lora/mono-es"
    gen: GenerateArgs
    method: str = "lora"  # the paper's preset adds a repetition penalty for full-parameter runs


def split_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found.

    >>> split_at_stop("Hello.\\n### Instruction:", ["\\n### "])
    ('Hello.', True)
    """
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Cut at the first stop string, then strip.

    >>> cut_at_stop("Paris.\\n### Instruction: more", ["\\n### "])
    'Paris.'
    """
    return split_at_stop(text, stops)[0].strip()


def length_sorted_batches(items: list, key: Callable, size: int) -> Iterator[list]:
    """Batches of similar length (longest first), so little compute is spent on padding."""
    ordered = sorted(items, key=key, reverse=True)
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]


def effective(gen: GenerateArgs, method: str) -> GenerateArgs:
    """Apply the decoding preset.

    >>> p = effective(GenerateArgs(preset="paper"), "full")
    >>> p.num_beams, p.max_new_tokens, p.no_repeat_ngram_size, p.repetition_penalty
    (4, 256, 6, 1.1)
    >>> effective(GenerateArgs(preset="paper"), "lora").repetition_penalty
    1.0
    """
    if gen.preset == "paper":
        penalty = 1.1 if method == "full" else 1.0
        return replace(gen, num_beams=4, max_new_tokens=256, no_repeat_ngram_size=6, repetition_penalty=penalty,
                       do_sample=False, stop=["\n### "])  # fmt: skip
    if gen.preset == "fast":
        return replace(gen, num_beams=1, max_new_tokens=128, no_repeat_ngram_size=0, do_sample=False)
    return gen


def decoding_settings(gen: GenerateArgs) -> dict:
    """What is recorded with every answer: the settings that shape the text, not the plumbing."""
    settings = asdict(gen)
    for plumbing in ("batch_size", "base_url", "api_key_env", "concurrency"):
        settings.pop(plumbing)
    return settings


def stable_hash(text: str) -> int:
    """The same integer for the same text in every process (Python's hash() is salted per process)."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def shard_of(prompt_id: str, shard: tuple[int, int]) -> bool:
    """A stable split of prompts into n shards, independent of file order.

    >>> sum(shard_of(f"p{i}", (0, 2)) for i in range(1000)) + sum(shard_of(f"p{i}", (1, 2)) for i in range(1000))
    1000
    """
    index, count = shard
    return stable_hash(prompt_id) % count == index


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n.

    >>> parse_shard("1/4")
    (1, 4)
    """
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise BabeltuneError(f"--shard: expected I/N such as 0/4, got {text!r}") from None
    if not 0 <= index < count:
        raise BabeltuneError(f"--shard: need 0 <= I < N, got {text!r}")
    return index, count


def _record(
    job: GenerateJob, p: TestPrompt, prompt_text: str, response: str, new_tokens: int, settings: dict
) -> dict:
    return {
        "id": p.id,
        "source_id": p.source_id,
        "lang": p.lang,
        "run": job.run_name,
        "prompt": p.prompt,
        "prompt_text": prompt_text,
        "reference": p.reference,
        "response": cut_at_stop(response, settings["stop"]),
        "new_tokens": new_tokens,
        "decoding": settings,
    }


Backend = Callable[[GenerateJob, GenerateArgs, list[TestPrompt], AppendLog], None]
BACKENDS: Registry[Backend] = Registry("generation backend")


def use_bf16(gen: GenerateArgs, dtype: str) -> bool:
    from babeltune.train import bf16_is_fast

    return gen.precision == "bf16" or (gen.precision == "auto" and dtype == "float32" and bf16_is_fast())


def generate_batch(
    model, tokenizer, texts: list[str], gen: GenerateArgs, bf16: bool, seed: int = 0, streamer=None
):
    """Generate for one batch of prompt texts; returns [(decoded new text, new token count)]."""
    import torch

    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    torch.manual_seed(seed)
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
        )
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    return [
        (tokenizer.decode(ids, skip_special_tokens=True), int((ids != tokenizer.pad_token_id).sum()))
        for ids in new_tokens
    ]


@BACKENDS.register("hf")
def hf_generate(job: GenerateJob, gen: GenerateArgs, todo: list[TestPrompt], log: AppendLog) -> None:
    """transformers ``generate``: left padding, length-sorted batches, KV cache, stop strings, LoRA unmerged."""
    import torch

    from babeltune.models import load_model, load_tokenizer

    base = str(job.checkpoint) if job.checkpoint else job.model.name
    tokenizer = load_tokenizer(base, padding_side="left")
    model = load_model(base, job.model.dtype, adapter=job.adapter).eval()
    if torch.cuda.is_available():
        model.to("cuda")
    settings = decoding_settings(gen)
    bf16 = use_bf16(gen, job.model.dtype)
    texts = {p.id: build_prompt(job.model.template, tokenizer, p.prompt) for p in todo}
    bar = tqdm(total=len(todo), desc=f"generate {job.run_name}", unit="answer")
    for batch in length_sorted_batches(todo, lambda p: len(texts[p.id]), gen.batch_size):
        seed = gen.seed + (stable_hash(batch[0].id) >> 224)  # its top 32 bits: a per-batch seed
        answers = generate_batch(model, tokenizer, [texts[p.id] for p in batch], gen, bf16, seed)
        for p, (answer, n_tokens) in zip(batch, answers, strict=True):
            log.append(_record(job, p, texts[p.id], answer, n_tokens, settings))
        bar.update(len(batch))
    bar.close()


@BACKENDS.register("openai")
def openai_generate(job: GenerateJob, gen: GenerateArgs, todo: list[TestPrompt], log: AppendLog) -> None:
    """An OpenAI-compatible endpoint serving the tuned model (``babeltune serve``, vLLM, ...).

    The alpaca template goes through /v1/completions with the exact training prompt; the chat template
    through /v1/chat/completions, where the server applies the model's own chat template."""
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    from babeltune.retry import GaveUp, call_with_retries, openai_retryable

    if not gen.base_url:
        raise BabeltuneError("generate.base_url: required for the openai backend")
    client = OpenAI(
        base_url=gen.base_url, api_key=os.environ.get(gen.api_key_env) or "none", max_retries=0, timeout=600
    )
    settings = decoding_settings(gen)
    model = gen.model or job.run_name
    common = {"model": model, "max_tokens": gen.max_new_tokens, "temperature": gen.temperature if gen.do_sample else 0,
              "top_p": gen.top_p, "stop": gen.stop or None, "seed": gen.seed}  # fmt: skip
    lock = threading.Lock()
    bar = tqdm(total=len(todo), desc=f"generate {job.run_name}", unit="answer")

    def ask(p: TestPrompt) -> tuple[str, Callable[[], str]]:
        if job.model.template == "alpaca":
            text = build_prompt("alpaca", None, p.prompt)
            return text, lambda: client.completions.create(prompt=text, **common).choices[0].text
        messages = [{"role": "user", "content": p.prompt}]
        return (
            p.prompt,
            lambda: client.chat.completions.create(messages=messages, **common).choices[0].message.content,
        )

    def one(p: TestPrompt) -> None:
        text, call = ask(p)
        try:
            answer = call_with_retries(call, openai_retryable, max_retries=4)
        except GaveUp as err:
            raise BabeltuneError(f"generate: {gen.base_url} failed for {p.id}: {err.reason}") from None
        with lock:
            log.append(_record(job, p, text, answer or "", -1, settings))
            bar.update(1)

    with ThreadPoolExecutor(max_workers=gen.concurrency) as pool:
        list(pool.map(one, todo))
    bar.close()


@BACKENDS.register("vllm")
def vllm_generate(job: GenerateJob, gen: GenerateArgs, todo: list[TestPrompt], log: AppendLog) -> None:
    """vLLM on GPUs (``pip install babeltune[vllm]``); the LoRA adapter is applied per request."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise BabeltuneError(
            "generate.backend: vllm is not installed (pip install 'babeltune[vllm]')"
        ) from None
    if gen.num_beams > 1:
        raise BabeltuneError(
            "generate.num_beams: the vllm backend decodes greedily or by sampling; use hf for beams"
        )
    from babeltune.models import resolve

    base = str(job.checkpoint) if job.checkpoint else resolve(job.model.name)
    llm = LLM(model=base, enable_lora=job.adapter is not None, seed=gen.seed)
    tokenizer = llm.get_tokenizer()
    texts = [build_prompt(job.model.template, tokenizer, p.prompt) for p in todo]
    params = SamplingParams(
        temperature=gen.temperature if gen.do_sample else 0.0, top_p=gen.top_p, max_tokens=gen.max_new_tokens,
        repetition_penalty=gen.repetition_penalty, stop=gen.stop or None, seed=gen.seed,
    )  # fmt: skip
    lora = LoRARequest("adapter", 1, str(job.adapter)) if job.adapter else None
    settings = decoding_settings(gen)
    for p, text, out in zip(todo, texts, llm.generate(texts, params, lora_request=lora), strict=True):
        completion = out.outputs[0]
        log.append(_record(job, p, text, completion.text, len(completion.token_ids), settings))


def run(job: GenerateJob, out_dir: Path, shard: tuple[int, int] | None = None) -> Path:
    """Answer every prompt (of this shard) not yet answered; returns the responses file written."""
    prompts = [TestPrompt.from_dict(r) for r in read_jsonl(job.prompts)]
    gen = effective(job.gen, job.method)
    if shard:
        prompts = [p for p in prompts if shard_of(p.id, shard)]
        path = out_dir / f"responses.shard-{shard[0]}-of-{shard[1]}.jsonl"
    else:
        path = out_dir / "responses.jsonl"
    with AppendLog(path) as log:
        done = {r["id"] for r in log.rows}
        if not shard:  # merge what shards already answered
            for part in sorted(out_dir.glob("responses.shard-*.jsonl")):
                for row in read_complete_jsonl(part):
                    if row["id"] not in done:
                        log.append(row)
                        done.add(row["id"])
        todo = [p for p in prompts if p.id not in done]
        if todo:
            BACKENDS.get(gen.backend)(job, gen, todo, log)
    return path
