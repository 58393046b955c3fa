"""Reading and writing files: any JSONL loads or fails with file and line; an unwritable folder is one line."""

import json

from hypothesis import given
from hypothesis import strategies as st

from babeltune.cli import main
from babeltune.data import loaders
from babeltune.registry import BabeltuneError
from helpers.strategies import SETTINGS, values


@SETTINGS
@given(st.lists(st.binary(max_size=60) | st.builds(json.dumps, values), max_size=6))
def test_any_jsonl_file_loads_or_fails_with_file_and_line(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    try:
        examples = loaders.examples_from_source(str(path), "en")
    except BabeltuneError as err:
        assert str(err).startswith(f"{path}:")
    else:
        assert all(e.lang == "en" and isinstance(e.instruction, str) for e in examples)


def test_an_unwritable_output_directory_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["data", "configs/quick.yaml", f"--output_dir={blocker / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("babeltune: error: output_dir: cannot write to") and "Traceback" not in err
