"""LLM judges. A judge is data (a prompt file and a parser name) plus a backend that runs it.

Backends: ``openai`` (any OpenAI-compatible endpoint: OpenAI, vLLM, llama.cpp, Ollama) and ``local``
(a transformers model). An unparsable judgement is recorded as ``None`` with the raw text, never a
sentinel number.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from babeltune import languages
from babeltune.content_cache import ContentCache, cache_key
from babeltune.endpoints import EndpointArgs, reply_text
from babeltune.inference.engines import ENGINES
from babeltune.io import regular_file
from babeltune.locks import Claims
from babeltune.models import check_model_name
from babeltune.registry import BabeltuneError, Registry, check_names, short, unknown_name_error
from babeltune.retry import Usage
from babeltune.settings import load_yaml, setting

JUDGES_DIR = resources.files("babeltune") / "resources" / "judges"
CLAIM_POLL = 0.5  # seconds between looks at the cache for judgements another process is making


@dataclass
class JudgeArgs(EndpointArgs):
    timeout: float = setting(120.0, "openai backend: seconds per request", affects_result=False, gt=0)
    enabled: bool = setting(True, "run the LLM judge")
    prompt: str = setting(
        "paper-1to3",
        "judge prompt: paper-1to3, mtbench-1to10 or pairwise (resources/judges/NAME.yaml), or the path of a "
        "YAML file of your own with the same fields",
    )
    backend: str = setting(
        "local", "judge backend: local (a transformers model) or openai (any compatible endpoint)"
    )
    model: str = setting(
        "builtin:smollm2-135m", "judge model: a model name for local, the served model id for openai"
    )
    rating_mode: Literal["next-token", "generate"] = setting(
        "next-token", "local judge: read the rating from next-token probabilities, or generate and parse"
    )
    max_per_language: int | None = setting(
        None, "judge only the first N prompts of each language and model", ge=1
    )
    max_new_tokens: int = setting(256, "judge output length when generating", ge=1, le=10**6)
    batch_size: int = setting(
        8, "local judge: answers per batch (length-sorted)", affects_result=False, ge=1, le=4096
    )
    engine: str = setting(
        "hf", "local judge in generate mode: the generation engine that answers (hf; vllm where installed)"
    )

    def check(self, where: str) -> None:
        check_names(
            where, backend=lambda: BACKENDS.get(self.backend), prompt=lambda: load_prompt(self.prompt)
        )
        if self.enabled and self.backend == "local":
            check_model_name(self.model, f"{where}.model")
            if self.rating_mode == "generate":
                check_names(where, engine=lambda: ENGINES.get(self.engine))
                if not ENGINES.get(self.engine).local:
                    raise BabeltuneError(f"{where}.engine: {self.engine} answers through an endpoint: for that "
                                         f"set {where}.backend: openai")  # fmt: skip
        if self.enabled and self.backend == "openai" and not self.base_url:
            raise BabeltuneError(f"{where}.base_url: required when {where}.backend is 'openai'")

    def identity(self, prompt: JudgePrompt) -> list:
        """What decides a judgement besides the item: the cache key's first part."""
        engine = (
            [self.engine] if self.engine != "hf" and self.rating_mode == "generate" else []
        )  # old keys stay
        return [self.backend, self.model, prompt.fingerprint, self.rating_mode, self.max_new_tokens, *engine]


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    version: int
    parser: str
    scale: tuple[int, int]
    system: str
    user: str
    rating_prefix: str

    def messages(self, question: str, answer: str, lang: str, answer_b: str | None = None) -> list[dict]:
        user = self.user.format(
            question=question, answer=answer, answer_b=answer_b, language=languages.get(lang).name
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    @property
    def choices(self) -> list[str]:
        """What may follow the rating prefix: the scale's numbers, or the pairwise letters."""
        if self.parser == "pairwise-verdict":
            return ["A", "B", "C"]
        return [str(v) for v in range(self.scale[0], self.scale[1] + 1)]

    @property
    def fingerprint(self) -> str:
        """Changes with everything that reaches the judge model or reads its answer (the texts, the rating
        prefix, the parser, the scale), so no cached judgement outlives a change to one of them; the name and
        version label the file and change nothing."""
        blob = json.dumps([self.system, self.user, self.rating_prefix, self.parser, list(self.scale)],
                          ensure_ascii=False)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


PROMPT_FIELDS = ("name", "version", "parser", "scale", "system", "user", "rating_prefix")


def load_prompt(name: str) -> JudgePrompt:
    """A judge prompt: one of resources/judges by name, or a YAML file of your own by path (same fields)."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = regular_file(Path(name), "judge prompt file", max_bytes=PROMPT_MAX_BYTES)
    else:
        available = [p.name.removesuffix(".yaml") for p in JUDGES_DIR.iterdir() if p.name.endswith(".yaml")]
        if name not in available:
            raise unknown_name_error("judge prompt", name, available)
        path = JUDGES_DIR / f"{name}.yaml"
    stat = path.stat()
    return _parsed_prompt(name, str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _parsed_prompt(name: str, path: str, mtime_ns: int, size: int) -> JudgePrompt:
    """A prompt file read once per version of it (planning the paper's grid asks 336 times)."""
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise BabeltuneError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    check_prompt(data, path)
    return JudgePrompt(**{f: data[f] for f in PROMPT_FIELDS} | {"scale": tuple(data["scale"])})


PROMPT_MAX_BYTES = 1_000_000
PLACEHOLDERS = {"question", "answer", "answer_b", "language"}  # what ``JudgePrompt.messages`` fills in


def check_prompt(data: object, path: str) -> None:
    """A judge prompt file against its schema, each error naming the file and the field.

    >>> check_prompt({"name": "j", "version": 1, "parser": "bracket-rating", "scale": [3, 1], "system": "",
    ...               "user": "{question} {answer}", "rating_prefix": "[["}, "j.yaml")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: j.yaml: scale: two whole numbers, low then high, e.g. [1, 3]; got [3, 1]
    """
    where = f"{path}: a judge prompt"
    if not isinstance(data, dict):
        raise BabeltuneError(f"{where} is a mapping of {', '.join(PROMPT_FIELDS)}")
    unknown = sorted(set(map(str, data)) - set(PROMPT_FIELDS))
    if unknown:
        raise BabeltuneError(
            f"{path}: unknown field {unknown[0]!r} (a judge prompt has {', '.join(PROMPT_FIELDS)})"
        )
    missing = [f for f in PROMPT_FIELDS if f not in data]
    if missing:
        raise BabeltuneError(f"{where} needs {', '.join(missing)} (see resources/judges/paper-1to3.yaml)")
    scale = data["scale"]
    ok = isinstance(scale, list) and len(scale) == 2 and all(type(v) is int for v in scale)
    if not ok or (scale[0] >= scale[1] and data["parser"] != "pairwise-verdict"):  # a verdict has no scale
        raise BabeltuneError(
            f"{path}: scale: two whole numbers, low then high, e.g. [1, 3]; got {short(scale)}"
        )
    for text_field in ("system", "user", "rating_prefix"):
        if not isinstance(data[text_field], str):
            raise BabeltuneError(f"{path}: {text_field}: expected text, got {short(data[text_field])}")
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(data["user"]) if f is not None}
    except ValueError as err:
        raise BabeltuneError(f"{path}: user: {err} (write a literal brace as {{{{ or }}}})") from None
    if used - PLACEHOLDERS or not {"question", "answer"} <= used:
        raise BabeltuneError(f"{path}: user: placeholders must be among {{{'}, {'.join(sorted(PLACEHOLDERS))}}} and "
                             f"include {{question}} and {{answer}}; it has {sorted(used)}")  # fmt: skip
    try:
        PARSERS.get(str(data["parser"]))
    except BabeltuneError as err:
        raise BabeltuneError(f"{path}: parser: {err}") from None


# --- parsers: raw judge text -> rating or None ---------------------------------------------------

PARSERS: Registry[Callable[[str, tuple[int, int]], int | None]] = Registry("judge parser")


@PARSERS.register("bracket-rating")
def parse_bracket_rating(text: str, scale: tuple[int, int]) -> int | None:
    """The last ``[[n]]`` in the text, if it lies on the scale.

    >>> parse_bracket_rating("Fine answer. Rating: [[3]]", (1, 3))
    3
    >>> parse_bracket_rating("Rating: [[7]]", (1, 3)) is None
    True
    >>> parse_bracket_rating("no rating here", (1, 3)) is None
    True
    """
    found = re.findall(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]", text)
    if not found:
        return None
    value = float(found[-1])
    if value != int(value) or not scale[0] <= value <= scale[1]:
        return None
    return int(value)


@PARSERS.register("pairwise-verdict")
def parse_pairwise(text: str, scale: tuple[int, int]) -> str | None:
    """The last ``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie) in the text.

    >>> parse_pairwise("B is more accurate. [[B]]", (0, 0)), parse_pairwise("[[C]]", (0, 0))
    ('B', 'tie')
    >>> parse_pairwise("both fine", (0, 0)) is None
    True
    """
    found = re.findall(r"\[\[\s*([ABC])\s*\]\]", text)
    return None if not found else {"A": "A", "B": "B", "C": "tie"}[found[-1]]


@dataclass
class Judgement:
    score: int | str | None  # a rating, or a pairwise verdict ("A", "B", "tie"); None when unparsable
    raw: str  # what the judge said (or, for next-token rating, the rating distribution)
    error: str | None = None  # the endpoint never answered: not cached, retried by the next run


@dataclass(frozen=True)
class JudgeItem:
    key: str
    question: str
    answer: str
    lang: str
    answer_b: str | None = None  # pairwise judges only

    def messages(self, prompt: JudgePrompt) -> list[dict]:
        return prompt.messages(self.question, self.answer, self.lang, self.answer_b)


def item_key(
    cfg: JudgeArgs, prompt: JudgePrompt, question: str, answer: str, lang: str, answer_b: str | None = None
) -> str:
    """The judgement cache's key: the judge's identity and the item's content."""
    return cache_key("judgement", *cfg.identity(prompt), question, answer, lang, answer_b)


def judge_with_cache(
    cfg: JudgeArgs, prompt: JudgePrompt, items: list[JudgeItem], cache: ContentCache, usage: Usage
) -> dict[str, Judgement]:
    """Judgements by item key: those in the run's judgement cache, the rest from the backend, cached as they
    arrive (a killed run re-judges nothing). A judgement the endpoint never gave is returned, not cached."""
    from tqdm.auto import tqdm

    def cached(keys: list[str]) -> dict[str, Judgement]:
        return {k: Judgement(v["score"], v["raw"]) for k, v in cache.get_many(keys).items()}

    found = cached([i.key for i in items])
    todo = list({item.key: item for item in items if item.key not in found}.values())

    def done(item: JudgeItem, judgement: Judgement) -> None:  # backends call it from one thread
        if judgement.error is None:
            cache.put_many({item.key: {"score": judgement.score, "raw": judgement.raw}})
        claims.release(item.key)
        found[item.key] = judgement
        bar.update(1)

    with tqdm(total=len(todo), desc="judge", unit="answer", disable=not todo) as bar, \
            Claims(cache.folder / "claims") as claims:  # fmt: skip
        while todo:  # what another process is judging now arrives in the cache: wait for it, never buy it
            mine = [item for item in todo if item.key not in found and claims.take(item.key)]
            bought = cached([item.key for item in mine])  # by the holder of a claim released just now
            for key in bought:
                claims.release(key)
            found.update(bought)
            bar.update(len(bought))
            mine = [item for item in mine if item.key not in bought]
            if mine:
                BACKENDS.get(cfg.backend)(cfg, prompt, mine, done, usage)
            theirs = [item.key for item in todo if item.key not in found]
            arrived = cached(theirs) if theirs else {}
            found.update(arrived)
            bar.update(len(arrived))
            todo = [item for item in todo if item.key not in found]
            if todo and not mine:
                time.sleep(CLAIM_POLL)
    return found


# --- backends -------------------------------------------------------------------------------------

Backend = Callable[
    [JudgeArgs, JudgePrompt, list[JudgeItem], Callable[[JudgeItem, Judgement], None], Usage], None
]
BACKENDS: Registry[Backend] = Registry("judge backend")


@BACKENDS.register("openai")
def openai_judge(
    cfg: JudgeArgs, prompt: JudgePrompt, items: list[JudgeItem], done: Callable, usage: Usage
) -> None:
    """Concurrent chat-completion calls with bounded retries (backoff + jitter) on 429/5xx/timeouts."""
    from babeltune.retry import GaveUp

    endpoint = cfg.connect("evaluate.judge")
    parse = PARSERS.get(prompt.parser)

    def attempt(item: JudgeItem) -> str:
        reply = endpoint.client.chat.completions.create(
            model=cfg.model,
            messages=item.messages(prompt),
            temperature=0,
            max_tokens=cfg.max_new_tokens,
        )
        if reply.usage:
            usage.add(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens)
        return reply_text(reply)

    def call(item: JudgeItem) -> tuple[JudgeItem, Judgement]:
        try:
            text = endpoint.call(lambda: attempt(item), usage)
        except GaveUp as err:
            return item, Judgement(None, "", error=f"{err.reason} (after {err.attempts} attempts)")
        return item, Judgement(parse(text, prompt.scale), text)

    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:  # each kept the moment it arrives
        for future in as_completed([pool.submit(call, item) for item in items]):
            done(*future.result())


@BACKENDS.register("local")
def local_judge(
    cfg: JudgeArgs, prompt: JudgePrompt, items: list[JudgeItem], done: Callable, usage: Usage
) -> None:
    """A local model as judge, asked through its chat template. ``next-token`` mode appends the rating prefix
    and reads the most probable rating from one forward pass (cheap, always parsable) in length-sorted
    batches; ``generate`` mode answers greedily through a generation engine (``evaluate.judge.engine``)."""
    parse = PARSERS.get(prompt.parser)
    if cfg.rating_mode == "generate":
        from babeltune.inference.decoding import Decoding
        from babeltune.inference.engine import Prompt

        engine = loaded_engine(cfg.engine, cfg.model, cfg.batch_size)
        asked = {item.key: item for item in items}
        prompts = [Prompt(item.key, "", tuple(item.messages(prompt))) for item in asked.values()]
        for p, answer in engine.answer(prompts, Decoding(max_new_tokens=cfg.max_new_tokens, stop=[])):
            usage.add(calls=1, input_tokens=len(engine.tokenizer(answer.prompt_text, add_special_tokens=False)
                                                ["input_ids"]), output_tokens=max(answer.new_tokens, 0))  # fmt: skip
            done(asked[p.id], Judgement(parse(answer.text, prompt.scale), answer.text))
        return
    from babeltune.inference.decoding import length_sorted_batches
    from babeltune.inference.hf import cached_for_inference
    from babeltune.templates import chat_text

    tokenizer, model = cached_for_inference(cfg.model)
    texts = {item.key: chat_text(tokenizer, item.messages(prompt)) + prompt.rating_prefix for item in items}
    for batch in length_sorted_batches(items, lambda item: len(texts[item.key]), cfg.batch_size):
        ratings = next_token_ratings(tokenizer, model, [texts[item.key] for item in batch], prompt, usage)
        for item, judgement in zip(batch, ratings, strict=True):
            done(item, judgement)


@cache
def loaded_engine(name: str, model: str, batch_size: int):
    """A generation engine with the judge model loaded, once per process (every evaluate task of a grid
    shares it). It computes in the weights' dtype, never under autocast: a judgement must not depend on
    the machine it ran on."""
    from babeltune.generate import GenerateArgs
    from babeltune.inference.decoding import Decoding
    from babeltune.inference.target import Target

    engine = ENGINES.get(name)(GenerateArgs(backend=name, batch_size=batch_size, precision="fp32"))
    refused = engine.refuses(Decoding(max_new_tokens=1, stop=[]))
    if refused:
        raise BabeltuneError(refused.replace("generate.backend", "evaluate.judge.engine"))
    engine.load(Target.locate(model), model)
    return engine


def next_token_ratings(
    tokenizer, model, texts: list[str], prompt: JudgePrompt, usage: Usage
) -> list[Judgement]:
    """The most probable rating after each text (which ends in the rating prefix), from one forward pass
    that keeps the last position's logits only; the probabilities of every rating are its raw text."""
    import torch

    choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in prompt.choices]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    usage.add(calls=1, input_tokens=int(enc["attention_mask"].sum()))
    with torch.inference_mode():
        logits = model(**enc, logits_to_keep=1).logits
    parse = PARSERS.get(prompt.parser)
    out = []
    for p in logits[:, -1, choice_ids].float().softmax(-1):
        dist = {c: round(float(v), 3) for c, v in zip(prompt.choices, p, strict=True)}
        best = prompt.choices[int(p.argmax())]
        out.append(Judgement(parse(f"[[{best}]]", prompt.scale), f"next-token rating probabilities {dist}"))
    return out
