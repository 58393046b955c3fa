"""Translation backends. Each takes unique texts for one language pair and reports results as they finish.

``done(pairs)`` receives {source text: translation} per finished batch (the stage caches it at once);
``failed(text, reason)`` receives what could not be translated after bounded retries.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import yaml

from babeltune import languages
from babeltune.config import TranslateArgs
from babeltune.registry import BabeltuneError, Registry
from babeltune.retry import Usage

Done = Callable[[dict[str, str]], None]
Failed = Callable[[str, str], None]


BACKENDS: Registry[type] = Registry("translation backend")


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

        model = AutoModelForSeq2SeqLM.from_pretrained(name).eval()
        return AutoTokenizer.from_pretrained(name), model, model.config.model_type

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


@BACKENDS.register("openai")
class OpenAITranslator:
    """Any OpenAI-compatible chat endpoint; one text per request, concurrent, with bounded retries."""

    def __init__(self, cfg: TranslateArgs):
        import os

        from openai import OpenAI

        if not cfg.base_url:
            raise BabeltuneError("translate.base_url: required for the openai backend")
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise BabeltuneError(f"translate.api_key_env: environment variable {cfg.api_key_env} is not set")
        # Retries are ours (bounded, counted, with jitter), so the client's own are off.
        self.client = OpenAI(base_url=cfg.base_url, api_key=key, max_retries=0, timeout=cfg.timeout)
        self.cfg = cfg
        self.usage = Usage()
        path = resources.files("babeltune") / "resources" / "translate" / f"{cfg.prompt}.yaml"
        if not path.is_file():
            raise BabeltuneError(f"translate.prompt: no prompt file {cfg.prompt}.yaml in resources/translate")
        self.prompt = yaml.safe_load(path.read_text(encoding="utf-8"))

    def _one(self, text: str, src: str, tgt: str) -> str:
        user = self.prompt["user"].format(
            source=languages.get(src).name, target=languages.get(tgt).name, text=text
        )
        reply = self.client.chat.completions.create(
            model=self.cfg.model,
            messages=[
                {"role": "system", "content": self.prompt["system"]},
                {"role": "user", "content": user},
            ],
            temperature=0,
        )
        content = reply.choices[0].message.content
        if content is None:
            raise ValueError("reply has no content")
        usage = reply.usage
        self.usage.add(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )
        return content.strip()

    def translate(self, texts: list[str], src: str, tgt: str, done: Done, failed: Failed) -> None:
        from babeltune.retry import GaveUp, call_with_retries, openai_retryable

        def work(text: str) -> None:
            def attempt() -> str:
                self.usage.add(calls=1)
                return self._one(text, src, tgt)

            try:
                result = call_with_retries(
                    attempt,
                    openai_retryable,
                    self.cfg.max_retries,
                    on_retry=lambda err: self.usage.add(retries=1),
                )
            except GaveUp as err:
                failed(text, f"{err.reason} (after {err.attempts} attempts)")
                return
            done({text: result})

        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            list(pool.map(work, texts))
