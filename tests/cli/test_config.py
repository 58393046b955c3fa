"""`babeltune show-config` and loading a config in a real process: YAML 1.2 values, no machine-learning
library imported to read one."""

import subprocess
import sys
from collections import Counter

from conftest import babeltune, tiny_config


def test_norwegian_is_a_language_not_false(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", test="{languages: [en, no]}")
    proc = babeltune("show-config", str(cfg), "--data.languages=[en, no]")
    assert proc.returncode == 0, proc.stderr
    assert Counter(line.strip() for line in proc.stdout.splitlines())["- 'no'"] == 2


def test_a_methods_own_settings_nested_under_its_name_reach_the_config(tmp_path, tiny_model):
    """`train: {full: {epochs: 3}}` in a YAML file, as the README writes it, is `train.full_epochs: 3`; a
    setting the method does not override is one line naming it."""
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run", train="{full: {epochs: 3, nproc: 2}}"
    )
    proc = babeltune("show-config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    shown = [line.strip() for line in proc.stdout.splitlines()]
    assert "full_epochs: 3.0" in shown and "full_nproc: 2" in shown
    refused = babeltune("show-config", str(cfg), "--train.full.warmup=1")
    assert (
        refused.returncode == 2
        and "train.full.warmup: full runs have no setting of their own" in refused.stderr
    )


def test_loading_the_config_imports_no_machine_learning_library():
    """`babeltune plan` and `show-config` answer fast: settings live beside their stages, whose heavy
    imports sit inside the functions that need them."""
    code = "import sys, babeltune.config, babeltune.experiment; print(sorted({'torch', 'transformers', 'peft', 'datasets', 'matplotlib'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
