"""Eight built-in English items with their human de/fr versions, for the translate tests."""

import pytest

from babeltune.config import DataArgs
from babeltune.data import stage as data_stage


@pytest.fixture()
def english(tmp_path):
    """Eight built-in items: English source plus the human de/fr versions as references."""
    return data_stage.run(
        DataArgs(languages=["en", "de", "fr"], max_examples_per_language=8), tmp_path / "data"
    )
