"""A trained tiny adapter and a `babeltune serve` process on it, for the server's in-process and CLI tests."""

import os
import subprocess
import sys

import openai
import pytest

from babeltune.config import LoraArgs, MixArgs, ModelArgs, TrainArgs
from babeltune.data import stage as data_stage
from babeltune.mix import run as mix
from babeltune.train.stage import TrainJob
from babeltune.train.stage import run as train

KEY = "sk-serve-test-key"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """A babeltune training folder: the tiny model plus a LoRA adapter."""
    root = tmp_path_factory.mktemp("serve")
    data_stage.run(data_stage.DataArgs(languages=["en"], max_examples_per_language=8), root)
    mix(MixArgs(regimes=["english-only"]), root / "examples.jsonl", ["en"], root)
    job = TrainJob(ModelArgs(name=tiny_model), "lora", LoraArgs(), TrainArgs(epochs=1))
    train(job, root / "en-only" / "mixture.jsonl", root / "train")
    return root / "train"


@pytest.fixture(scope="module")
def server(trained):
    env = dict(os.environ, BT_SERVE_KEY=KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "babeltune", "serve", str(trained), "--port", "0", "--name", "tiny",
         "--api-key-env", "BT_SERVE_KEY", "--max-tokens", "64", "--max-request-bytes", "20000"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert "serving 'tiny' (alpaca template) at http://127.0.0.1:" in line, line
    yield line.split(" at ")[1].strip()
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server, api_key=KEY, max_retries=0)
