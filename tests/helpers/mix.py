"""The built-in examples of the nine paper languages, for the mixer's in-process and CLI tests."""

import pytest

from babeltune.config import DataArgs
from babeltune.data import stage as data_stage

LANGS = ["en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh"]


@pytest.fixture(scope="module")
def examples():
    return data_stage.load_examples(DataArgs(languages=LANGS))
