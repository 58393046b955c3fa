"""Generate stage: every tuned model answers every test prompt, batched, resumable.

``responses.jsonl`` is appended as batches finish, so a killed run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from babeltune.config import GenerateArgs, ModelArgs
from babeltune.data.schema import TestPrompt
from babeltune.io import AppendLog, read_jsonl
from babeltune.registry import Registry
from babeltune.templates import build_prompt


@dataclass
class GenerateJob:
    prompts: Path  # test_prompts.jsonl
    model: ModelArgs
    adapter: Path | None  # LoRA adapter folder, or None
    checkpoint: Path | None  # full fine-tuned model folder, or None (then the base model)
    run_name: str  # recorded in each response, e.g. "smollm2-135m/lora/mono-es"
    gen: GenerateArgs


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Cut at the first stop string, then strip.

    >>> cut_at_stop("Paris.\\n### Instruction: more", ["\\n### "])
    'Paris.'
    """
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut].strip()


def length_sorted_batches(items: list, key: Callable, size: int) -> Iterator[list]:
    """Batches of similar length (longest first), so little compute is spent on padding."""
    ordered = sorted(items, key=key, reverse=True)
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]


Backend = Callable[[GenerateJob, list[TestPrompt], AppendLog], None]
BACKENDS: Registry[Backend] = Registry("generation backend")


def decoding_settings(gen: GenerateArgs) -> dict:
    settings = asdict(gen)
    settings.pop("batch_size")
    return settings


@BACKENDS.register("hf")
def hf_generate(job: GenerateJob, todo: list[TestPrompt], log: AppendLog) -> None:
    """transformers ``generate`` with left padding and length-sorted batches."""
    import torch

    from babeltune.models import load_model, load_tokenizer

    base = str(job.checkpoint) if job.checkpoint else job.model.name
    tokenizer = load_tokenizer(base, padding_side="left")
    model = load_model(base, job.model.dtype, adapter=job.adapter).eval()
    gen = job.gen
    settings = decoding_settings(gen)
    texts = {p.id: build_prompt(job.model.template, tokenizer, p.prompt) for p in todo}
    bar = tqdm(total=len(todo), desc=f"generate {job.run_name}", unit="answer")
    for batch in length_sorted_batches(todo, lambda p: len(texts[p.id]), gen.batch_size):
        enc = tokenizer(
            [texts[p.id] for p in batch], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=gen.max_new_tokens,
                do_sample=False,
                num_beams=gen.num_beams,
                no_repeat_ngram_size=gen.no_repeat_ngram_size or None,
                repetition_penalty=gen.repetition_penalty,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        for p, ids in zip(batch, new_tokens, strict=True):
            raw = tokenizer.decode(ids, skip_special_tokens=True)
            n_tokens = int((ids != tokenizer.pad_token_id).sum())
            log.append(
                {
                    "id": p.id,
                    "source_id": p.source_id,
                    "lang": p.lang,
                    "run": job.run_name,
                    "prompt": p.prompt,
                    "prompt_text": texts[p.id],
                    "reference": p.reference,
                    "response": cut_at_stop(raw, gen.stop),
                    "new_tokens": n_tokens,
                    "decoding": settings,
                }
            )
        bar.update(len(batch))
    bar.close()


def run(job: GenerateJob, out_dir: Path) -> Path:
    """Answer every prompt not yet answered in ``out_dir/responses.jsonl``."""
    prompts = [TestPrompt.from_dict(r) for r in read_jsonl(job.prompts)]
    path = out_dir / "responses.jsonl"
    with AppendLog(path) as log:
        done = {r["id"] for r in log.rows}
        todo = [p for p in prompts if p.id not in done]
        if todo:
            BACKENDS.get(job.gen.backend)(job, todo, log)
    return path
