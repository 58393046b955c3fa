"""Training on a tiny random model: the loss must go down and the weights must change."""

import pytest
from safetensors.torch import load_file

from babeltune import mix
from babeltune.config import DataArgs, LoraArgs, MixArgs, ModelArgs, TrainArgs
from babeltune.data import stage as data_stage
from babeltune.io import read_json, read_jsonl
from babeltune.models import load_model
from babeltune.train import TrainJob, run, tokenize


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix")
    data_stage.run(DataArgs(languages=["en", "es"], max_examples_per_language=12), out)
    mix.run(MixArgs(regimes=["multilingual-downsampled"], seed=0), out / "examples.jsonl", ["en", "es"], out)
    return out / "multi-down" / "mixture.jsonl"


def _job(mixture, tiny_model, method, **train):
    args = TrainArgs(
        epochs=8,
        grad_accum=1,
        batch_size=4,
        learning_rate=3e-2,
        full_learning_rate=3e-3,
        max_length=96,
        **train,
    )
    # A random hidden-16 model learns little through attention alone: adapt the MLPs too.
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return TrainJob(
        mixture,
        ModelArgs(name=tiny_model),
        method,
        LoraArgs(r=8, alpha=16, dropout=0.0, target_modules=modules),
        args,
    )


def test_lora_learns_and_saves_an_adapter(tmp_path, mixture, tiny_model):
    target = run(_job(mixture, tiny_model, "lora"), tmp_path)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["probe_loss_after"] < metrics["probe_loss_before"] - 0.1
    weights = load_file(target / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: it moved
    assert {k.split(".")[-3] for k in weights if "lora_A" in k} >= {"q_proj", "v_proj"}
    log = read_jsonl(tmp_path / "train_log.jsonl")
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == metrics["steps"] and losses[-1] < losses[0]
    assert metrics["trainable_parameters"] < 10_000
    assert "method: lora" in (tmp_path / "train_config.yaml").read_text()


def test_full_parameter_training_changes_the_weights(tmp_path, mixture, tiny_model):
    target = run(_job(mixture, tiny_model, "full"), tmp_path)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["probe_loss_after"] < metrics["probe_loss_before"]
    before = load_model(tiny_model).state_dict()
    after = load_model(str(target)).state_dict()
    changed = [k for k in before if not before[k].equal(after[k])]
    assert len(changed) > len(before) // 2


def test_prompt_tokens_are_masked_when_loss_is_on_the_answer_only(mixture, tiny_model):
    from babeltune.data.schema import Example
    from babeltune.models import load_tokenizer

    tok = load_tokenizer(tiny_model)
    ex = Example("a:en", "a", "en", "Say hi.", "", "Hi there.")
    masked = tokenize([ex], tok, "alpaca", 512, loss_on_prompt=False)[0]
    full = tokenize([ex], tok, "alpaca", 512, loss_on_prompt=True)[0]
    assert full["labels"] == full["input_ids"]
    answer = [t for t in masked["labels"] if t != -100]
    assert 0 < len(answer) < len(masked["input_ids"])
    assert tok.decode(answer).startswith("Hi there.")
