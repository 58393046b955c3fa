"""Translation settings and the backends they name. Each backend takes unique texts for one language pair
and reports results as they finish.

``done(pairs)`` receives {source text: translation} per finished batch (the stage caches it at once);
``failed(text, reason)`` receives what could not be translated after bounded retries.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from babeltune import languages
from babeltune.endpoints import EndpointArgs, reply_text
from babeltune.registry import BabeltuneError, Registry, check_names
from babeltune.retry import Usage
from babeltune.settings import load_yaml, setting

PROMPTS = resources.files("babeltune") / "resources" / "translate"


@dataclass
class TranslateArgs(EndpointArgs):
    enabled: bool = setting(
        False,
        "machine-translate the source-language examples into the other data.languages",
        affects_result=False,
    )
    backend: str = setting(
        "hf",
        "hf (transformers seq2seq MT: Marian, NLLB, M2M100), ctranslate2 (the same models converted to "
        "CTranslate2, int8 on CPUs), causal (a local instruction-tuned LM asked to translate, e.g. "
        "builtin:smollm2-135m, offline) or openai (any compatible chat endpoint)",
    )
    model: str = setting(
        "Helsinki-NLP/opus-mt-{src}-{tgt}",
        "MT model id or folder ({src}/{tgt} are filled per pair), or the served model",
    )
    batch_size: int = setting(
        16,
        "hf, ctranslate2: texts per batch (batches are sorted by length)",
        affects_result=False,
        ge=1,
        le=65536,
    )
    num_beams: int = setting(1, "hf, ctranslate2, causal: beam width", ge=1, le=64)
    repetition_penalty: float = setting(
        1.0, "causal: repetition penalty (a small LM loops without one: 1.3 cures most loops); 1 is none",
        ge=1, le=100,
    )  # fmt: skip
    max_length: int = setting(512, "hf, ctranslate2: maximum tokens in and out", ge=1, le=10**6)
    compute_type: str = setting(
        "auto", "ctranslate2: int8, int8_float32, float32, float16, ... or auto (the fastest this device has)"
    )
    prompt: str = setting(
        "chat-translate", "openai, causal: prompt file in resources/translate (without .yaml)"
    )
    check_language: bool = setting(
        True, "reject translations whose language ID (evaluate.langid) is not the target language"
    )
    min_length_ratio: float = setting(
        0.25, "reject translations shorter than this x the source (characters)", ge=0
    )
    max_length_ratio: float = setting(
        4.0, "reject translations longer than this x the source (characters)", gt=0
    )
    min_acceptance: float = setting(
        0.5,
        "a language whose share of accepted items falls under this is warned about on the console and in the "
        "report (none accepted is an error naming rejected.jsonl)",
        affects_result=False,
        ge=0,
        le=1,
    )
    cache: str | None = setting(
        None,
        "translation cache folder, safe to share between runs and hosts (default: <run dir>/cache/translations)",
        affects_result=False,
    )

    def check(self, where: str) -> None:
        check_names(
            where, backend=lambda: BACKENDS.get(self.backend), prompt=lambda: load_prompt(self.prompt)
        )
        if self.cache:  # a cache that cannot be made fails now, not after the first paid translations
            try:
                Path(self.cache).expanduser().mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise BabeltuneError(
                    f"{where}.cache: cannot make the folder {self.cache}: {err.strerror}"
                ) from None

    def translator(self) -> list:
        """What decides one segment's translation: the cache key's first part (filters are not in it, so a
        stricter filter reuses every cached translation)."""
        prompt = load_prompt(self.prompt) if self.backend in ("openai", "causal") else None
        detail = {"ctranslate2": self.compute_type}.get(self.backend, prompt)
        if self.backend == "causal" and self.repetition_penalty != 1.0:  # keys made without it stay valid
            detail = [detail, self.repetition_penalty]
        return [self.backend, self.model, self.num_beams, self.max_length, detail]


Done = Callable[[dict[str, str]], None]
Failed = Callable[[str, str], None]


BACKENDS: Registry[type] = Registry("translation backend")


def load_prompt(name: str) -> dict:
    """A translation prompt file of resources/translate (system and user text)."""
    path = PROMPTS / f"{name}.yaml"
    if not path.is_file():
        raise BabeltuneError(f"no prompt file {name}.yaml in resources/translate")
    return load_yaml(path.read_text(encoding="utf-8"))


def model_for_pair(template: str, src: str, tgt: str) -> str:
    """Fill ``{src}``/``{tgt}`` in a model name: Marian models come one per language pair.

    >>> model_for_pair("Helsinki-NLP/opus-mt-{src}-{tgt}", "en", "de")
    'Helsinki-NLP/opus-mt-en-de'
    """
    return template.format(src=src, tgt=tgt)


def pair_codes(tokenizer, model_type: str, src: str, tgt: str) -> tuple[str, str | None]:
    """How a model family is told the language pair: (prefix for the source text, token the target text must
    start with, or None). NLLB and M2M100 take a source-language attribute and a target token; multi-target
    Marian models take a ``>>tgt<<`` prefix; one-pair Marian models need nothing."""
    kind = type(tokenizer).__name__.lower()
    if "nllb" in kind or model_type == "m2m_100":
        code = (lambda c: languages.get(c).openlid[0]) if "nllb" in kind else (lambda c: c)
        tokenizer.src_lang = code(src)
        return "", code(tgt)
    target_token = f">>{tgt}<<"
    if target_token in tokenizer.get_vocab():
        return target_token + " ", None
    return "", None


class Seq2SeqTranslator:
    """Length-sorted batches through a local sequence-to-sequence model; subclasses translate one batch."""

    def __init__(self, cfg: TranslateArgs):
        self.cfg = cfg
        self.usage = Usage()
        self._loaded: dict[str, tuple] = {}

    def _model(self, name: str):
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> tuple:  # (tokenizer, model, model_type)
        raise NotImplementedError

    def _batch(self, tokenizer, model, texts: list[str], target: str | None) -> list[str]:
        raise NotImplementedError

    def translate(self, texts: list[str], src: str, tgt: str, done: Done, failed: Failed) -> None:
        tokenizer, model, model_type = self._model(model_for_pair(self.cfg.model, src, tgt))
        prefix, target = pair_codes(tokenizer, model_type, src, tgt)
        ordered = sorted(texts, key=len, reverse=True)  # similar lengths per batch: little padding
        for i in range(0, len(ordered), self.cfg.batch_size):
            batch = ordered[i : i + self.cfg.batch_size]
            outputs = self._batch(tokenizer, model, [prefix + t for t in batch], target)
            done(dict(zip(batch, outputs, strict=True)))


@BACKENDS.register("hf")
class HFTranslator(Seq2SeqTranslator):
    """transformers sequence-to-sequence MT (MarianMT/OPUS-MT, NLLB-200, M2M100)."""

    def _load(self, name: str) -> tuple:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        from babeltune.models import from_hub

        where = name if Path(name).is_dir() else from_hub(name)
        model = AutoModelForSeq2SeqLM.from_pretrained(where).eval()
        return AutoTokenizer.from_pretrained(where), model, model.config.model_type

    def _batch(self, tokenizer, model, texts: list[str], target: str | None) -> list[str]:
        import torch

        enc = tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.cfg.max_length
        )
        extra = {"forced_bos_token_id": tokenizer.convert_tokens_to_ids(target)} if target else {}
        with torch.inference_mode():
            out = model.generate(
                **enc, num_beams=self.cfg.num_beams, max_new_tokens=self.cfg.max_length, **extra
            )
        self.usage.add(
            calls=1,
            input_tokens=int(enc["attention_mask"].sum()),
            output_tokens=int((out != tokenizer.pad_token_id).sum()),
        )
        return tokenizer.batch_decode(out, skip_special_tokens=True)


@BACKENDS.register("ctranslate2")
class CTranslate2Translator(Seq2SeqTranslator):
    """The same models through CTranslate2 (``pip install 'babeltune[ctranslate2]'``): converted once into the
    model cache, then run with ``translate.compute_type`` (int8 by default on CPUs)."""

    def _load(self, name: str) -> tuple:
        try:
            import ctranslate2
        except ImportError:
            raise BabeltuneError(
                "translate.backend: ctranslate2 is not installed (pip install 'babeltune[ctranslate2]')"
            ) from None
        import torch
        from transformers import AutoConfig, AutoTokenizer

        from babeltune.translate.convert import converted

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        supported = ctranslate2.get_supported_compute_types(device)
        if self.cfg.compute_type not in supported | {"auto", "default"}:
            raise BabeltuneError(
                f"translate.compute_type: {self.cfg.compute_type} is not supported on this {device}; choose "
                f"from {sorted(supported)} or auto"
            )
        translator = ctranslate2.Translator(
            str(converted(name)), device=device, compute_type=self.cfg.compute_type,
            intra_threads=torch.get_num_threads(),
        )  # fmt: skip
        return AutoTokenizer.from_pretrained(name), translator, AutoConfig.from_pretrained(name).model_type

    def _batch(self, tokenizer, model, texts: list[str], target: str | None) -> list[str]:
        sources = [tokenizer.convert_ids_to_tokens(tokenizer.encode(t)) for t in texts]
        results = model.translate_batch(
            sources,
            target_prefix=[[target]] * len(texts) if target else None,
            beam_size=self.cfg.num_beams,
            max_input_length=self.cfg.max_length,
            max_decoding_length=self.cfg.max_length,
        )
        hypotheses = [r.hypotheses[0] for r in results]
        self.usage.add(
            calls=1,
            input_tokens=sum(map(len, sources)),
            output_tokens=sum(map(len, hypotheses)),
        )
        return [
            tokenizer.decode(tokenizer.convert_tokens_to_ids(h), skip_special_tokens=True) for h in hypotheses
        ]


def prompt_messages(prompt: dict, text: str, src: str, tgt: str) -> list[dict]:
    """The chat messages that ask for one translation, from a prompt file of resources/translate."""
    user = prompt["user"].format(source=languages.get(src).name, target=languages.get(tgt).name, text=text)
    return [{"role": "system", "content": prompt["system"]}, {"role": "user", "content": user}]


@BACKENDS.register("causal")
class CausalTranslator:
    """A local instruction-tuned causal LM asked, through its chat template, to translate: the embedded
    model makes machine translations offline (poor ones: what an MT-quality ablation compares with the
    human-written versions). Greedy or beam decoding in length-sorted batches; an answer may run to twice its
    source's tokens plus 16 (a small model repeats itself rather than stop), at most ``max_length``."""

    def __init__(self, cfg: TranslateArgs):
        self.cfg = cfg
        self.usage = Usage()
        self.prompt = load_prompt(cfg.prompt)

    def translate(self, texts: list[str], src: str, tgt: str, done: Done, failed: Failed) -> None:
        from babeltune.inference.decoding import Decoding, length_sorted_batches
        from babeltune.inference.hf import cached_for_inference, generate_batch
        from babeltune.templates import chat_text

        tokenizer, model = cached_for_inference(model_for_pair(self.cfg.model, src, tgt))
        for batch in length_sorted_batches(texts, len, self.cfg.batch_size):
            longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in batch)
            decoding = Decoding(
                max_new_tokens=min(self.cfg.max_length, 2 * longest + 16),
                num_beams=self.cfg.num_beams,
                repetition_penalty=self.cfg.repetition_penalty,
                stop=[],
            )
            prompts = [chat_text(tokenizer, prompt_messages(self.prompt, t, src, tgt)) for t in batch]
            outputs = generate_batch(model, tokenizer, prompts, decoding, bf16=False)
            self.usage.add(
                calls=1,
                input_tokens=sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts),
                output_tokens=sum(n for _, n in outputs),
            )
            done({t: text.strip() for t, (text, _) in zip(batch, outputs, strict=True)})


@BACKENDS.register("openai")
class OpenAITranslator:
    """Any OpenAI-compatible chat endpoint; one text per request, concurrent, with bounded retries."""

    def __init__(self, cfg: TranslateArgs):
        self.endpoint = cfg.connect("translate")
        self.cfg = cfg
        self.usage = Usage()
        self.prompt = load_prompt(cfg.prompt)

    def _one(self, text: str, src: str, tgt: str) -> str:
        reply = self.endpoint.client.chat.completions.create(
            model=self.cfg.model, messages=prompt_messages(self.prompt, text, src, tgt), temperature=0
        )
        content = reply_text(reply)
        usage = reply.usage
        self.usage.add(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )
        return content.strip()

    def translate(self, texts: list[str], src: str, tgt: str, done: Done, failed: Failed) -> None:
        from babeltune.retry import GaveUp

        def work(text: str) -> None:
            try:
                result = self.endpoint.call(lambda: self._one(text, src, tgt), self.usage)
            except GaveUp as err:
                failed(text, f"{err.reason} (after {err.attempts} attempts)")
                return
            done({text: result})

        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            list(pool.map(work, texts))
