"""The one table of languages babeltune knows.

Every per-language behaviour (language-ID labels, judge prompt wording, test splits) is derived
from this table, so adding a language is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass

from babeltune.registry import BabeltuneError, unknown_name_error


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1
    name: str  # English name, used in judge prompts and reports
    script: str  # ISO 15924
    lid176: str  # label of fastText's lid.176 model
    openlid: tuple[str, ...]  # labels of OpenLID / GlotLID style models (ISO 639-3 + script)
    paper_train: bool = False  # one of the paper's 9 training languages
    paper_test: bool = False  # one of the paper's 8 test languages


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language("en", "English", "Latn", "en", ("eng_Latn",), paper_train=True, paper_test=True),
        Language("bg", "Bulgarian", "Cyrl", "bg", ("bul_Cyrl",), paper_train=True, paper_test=True),
        Language("cs", "Czech", "Latn", "cs", ("ces_Latn",), paper_train=True),
        Language("de", "German", "Latn", "de", ("deu_Latn",), paper_train=True),
        Language("es", "Spanish", "Latn", "es", ("spa_Latn",), paper_train=True, paper_test=True),
        Language("fi", "Finnish", "Latn", "fi", ("fin_Latn",), paper_train=True),
        Language("fr", "French", "Latn", "fr", ("fra_Latn",), paper_train=True, paper_test=True),
        Language("ru", "Russian", "Cyrl", "ru", ("rus_Cyrl",), paper_train=True, paper_test=True),
        Language(
            "zh",
            "Chinese",
            "Hans",
            "zh",
            ("zho_Hans", "zho_Hant", "cmn_Hani"),
            paper_train=True,
            paper_test=True,
        ),
        Language("bn", "Bengali", "Beng", "bn", ("ben_Beng",), paper_test=True),
        Language("no", "Norwegian", "Latn", "no", ("nob_Latn", "nno_Latn", "nor_Latn"), paper_test=True),
        Language("hi", "Hindi", "Deva", "hi", ("hin_Deva",)),
        Language("it", "Italian", "Latn", "it", ("ita_Latn",)),
        Language("pt", "Portuguese", "Latn", "pt", ("por_Latn",)),
        Language("nl", "Dutch", "Latn", "nl", ("nld_Latn",)),
        Language("pl", "Polish", "Latn", "pl", ("pol_Latn",)),
        Language("uk", "Ukrainian", "Cyrl", "uk", ("ukr_Cyrl",)),
        Language("sv", "Swedish", "Latn", "sv", ("swe_Latn",)),
        Language("da", "Danish", "Latn", "da", ("dan_Latn",)),
        Language("ja", "Japanese", "Jpan", "ja", ("jpn_Jpan",)),
        Language("ar", "Arabic", "Arab", "ar", ("arb_Arab",)),
        # Near neighbours of the paper's languages: what a language-ID model says instead of them, so that
        # every detector's label for them maps to one code (and confusable groups can name them).
        Language("mk", "Macedonian", "Cyrl", "mk", ("mkd_Cyrl",)),
        Language("sk", "Slovak", "Latn", "sk", ("slk_Latn",)),
        Language("sr", "Serbian", "Cyrl", "sr", ("srp_Cyrl",)),
        Language("hr", "Croatian", "Latn", "hr", ("hrv_Latn",)),
        Language("gl", "Galician", "Latn", "gl", ("glg_Latn",)),
        Language("ca", "Catalan", "Latn", "ca", ("cat_Latn",)),
        Language("as", "Assamese", "Beng", "as", ("asm_Beng",)),
        Language("mr", "Marathi", "Deva", "mr", ("mar_Deva",)),
        Language("ne", "Nepali", "Deva", "ne", ("npi_Deva",)),
    ]
}

PAPER_TRAIN = tuple(code for code, lang in LANGUAGES.items() if lang.paper_train)
PAPER_TEST = tuple(code for code, lang in LANGUAGES.items() if lang.paper_test)

# Every label a language-ID model may give: lid.176's, OpenLID/GlotLID's (ISO 639-3 + script) and the bare
# ISO 639-3 codes of heliport (``nob``, ``cmn``); macrolanguage codes (``nor``, ``zho``) map too.
_BY_LABEL = {
    label: lang.code
    for lang in LANGUAGES.values()
    for label in (lang.lid176, *lang.openlid, *(code.split("_")[0] for code in lang.openlid))
} | {"nb": "no", "nn": "no", "ara": "ar", "zh-cn": "zh", "zh-tw": "zh"}


def get(code: str) -> Language:
    """Look a language up by ISO 639-1 code.

    >>> get("zh").name
    'Chinese'
    """
    try:
        return LANGUAGES[code]
    except KeyError:
        raise unknown_name_error("language", code, LANGUAGES) from None


def check(code: str, where: str) -> None:
    """A config field's language code must be in the table.

    >>> check("xx", "data.languages")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: data.languages: unknown language 'xx' choices: ar, as, ...
    """
    if code not in LANGUAGES:
        raise BabeltuneError(f"{where}: {unknown_name_error('language', code, LANGUAGES)}")


def from_lid_label(label: str) -> str:
    """Map a language-ID label (``__label__nob_Latn``, ``nn``) to a table code; unknown labels pass through.

    >>> from_lid_label("__label__zho_Hans"), from_lid_label("nob_Latn"), from_lid_label("nno"), from_lid_label("cmn")
    ('zh', 'no', 'no', 'zh')
    >>> from_lid_label("xx")
    'xx'
    """
    label = label.removeprefix("__label__")
    return _BY_LABEL.get(label, _BY_LABEL.get(label.lower(), label))
