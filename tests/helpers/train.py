"""A small two-language mixture, for the training stage's in-process and CLI tests."""

import pytest

from babeltune import mix
from babeltune.config import DataArgs, MixArgs
from babeltune.data import stage as data_stage


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix")
    data_stage.run(DataArgs(languages=["en", "es"], max_examples_per_language=12), out)
    mix.run(MixArgs(regimes=["multilingual-downsampled"], seed=0), out / "examples.jsonl", ["en", "es"], out)
    return out / "multi-down" / "mixture.jsonl"
