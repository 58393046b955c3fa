"""Training on a tiny random model: the loss must go down and the weights must change."""

import pytest
from safetensors.torch import load_file

from babeltune.config import LoraArgs, ModelArgs, TrainArgs
from babeltune.io import read_json, read_jsonl
from babeltune.models import load_model
from babeltune.registry import BabeltuneError
from babeltune.train.data import tokenize
from babeltune.train.stage import TrainJob, run


def _job(tiny_model, method, **train):
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
        ModelArgs(name=tiny_model), method, LoraArgs(r=8, alpha=16, dropout=0.0, target_modules=modules), args
    )


FAMILIES = ["llama", "qwen2", "gemma", "gemma2", "mistral", "gpt_neox", "bloom"]


@pytest.mark.slow
def test_lora_learns_and_saves_an_adapter(tmp_path, mixture, tiny_model):
    target = run(_job(tiny_model, "lora"), mixture, tmp_path)
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
    assert metrics["parameters"] == sum(p.numel() for p in load_model(tiny_model).parameters())
    described = read_json(target / "babeltune.json")  # the checkpoint describes itself
    assert described == {"base_model": tiny_model, "method": "lora", "template": "alpaca", "dtype": "float32"}


@pytest.mark.slow
def test_full_parameter_training_changes_the_weights(tmp_path, mixture, tiny_model):
    target = run(_job(tiny_model, "full"), mixture, tmp_path)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["probe_loss_after"] < metrics["probe_loss_before"]
    before = load_model(tiny_model).state_dict()
    after = load_model(str(target)).state_dict()
    changed = [k for k in before if not before[k].equal(after[k])]
    assert len(changed) > len(before) // 2


def test_prompt_tokens_are_masked_when_loss_is_on_the_answer_only(mixture, tiny_model):
    from babeltune.models import load_tokenizer
    from babeltune.records import Example

    tok = load_tokenizer(tiny_model)
    ex = Example("a:en", "a", "en", "Say hi.", "", "Hi there.")
    masked = tokenize([ex], tok, "alpaca", 512, loss_on_prompt=False)[0]
    full = tokenize([ex], tok, "alpaca", 512, loss_on_prompt=True)[0]
    assert full["labels"] == full["input_ids"]
    answer = [t for t in masked["labels"] if t != -100]
    assert 0 < len(answer) < len(masked["input_ids"])
    assert tok.decode(answer).startswith("Hi there.")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_on_every_model_family(tmp_path, mixture, family):
    """LoRA attaches to the family's default modules, the loss goes down, LoRA weights change, the base does not."""
    from babeltune import tiny
    from babeltune.models import LORA_TARGETS

    folder = tiny.causal_lm(tmp_path / family, family)
    job = TrainJob(
        ModelArgs(name=folder),
        "lora",
        LoraArgs(r=8, alpha=16, dropout=0.0),
        TrainArgs(epochs=6, batch_size=4, grad_accum=1, learning_rate=5e-2, max_length=64),
    )
    target = run(job, mixture, tmp_path / "out")
    metrics = read_json(tmp_path / "out" / "metrics.json")
    assert metrics["probe_loss_after"] < metrics["probe_loss_before"]
    assert metrics["loss"] == ("model" if family == "gemma2" else "chunked")  # Gemma 2 soft-caps its logits
    weights = load_file(target / "adapter_model.safetensors")
    adapted = {k.split(".lora_")[0].split(".")[-1] for k in weights}
    assert adapted == set(LORA_TARGETS[family])
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    base_before = load_model(folder).state_dict()
    base_after = load_model(folder, adapter=target).get_base_model().state_dict()
    base_after = {k.replace(".base_layer", ""): v for k, v in base_after.items() if "lora_" not in k}
    assert all(base_before[k].equal(base_after[k]) for k in base_before)


@pytest.mark.slow
def test_validation_split_picks_the_best_checkpoint(tmp_path, mixture, tiny_model):
    job = _job(tiny_model, "lora", val_size=0.25)
    run(job, mixture, tmp_path)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["validation_examples"] == 3 and metrics["examples"] == 9
    assert metrics["probe"].endswith("validation examples") and "checkpoint-" in metrics["best_checkpoint"]
    evals = [r["eval_loss"] for r in read_jsonl(tmp_path / "train_log.jsonl") if "eval_loss" in r]
    assert len(evals) == 8 and metrics["probe_loss_after"] == pytest.approx(min(evals), abs=1e-6)
    assert not (tmp_path / "checkpoints").exists()  # cleaned up once the final weights are saved


@pytest.mark.slow
def test_useful_tokens_per_second_is_logged(tmp_path, mixture, tiny_model):
    run(_job(tiny_model, "lora"), mixture, tmp_path)
    steps = [r for r in read_jsonl(tmp_path / "train_log.jsonl") if "loss" in r]
    assert all(r["useful_tokens_per_second"] > 0 for r in steps)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["useful_tokens"] == steps[-1]["num_input_tokens_seen"]
    rates = sorted(r["useful_tokens_per_second"] for r in steps[1:])
    assert rates[0] <= metrics["step_tokens_per_second"] <= rates[-1]


@pytest.mark.slow
@pytest.mark.parametrize("val_size, saved_at", [(0, [4]), (0.25, [4, 8])])
def test_the_last_checkpoint_is_written_only_when_best_selection_needs_it(
    tmp_path, mixture, tiny_model, monkeypatch, val_size, saved_at
):
    from transformers import Trainer

    saves = []
    original = Trainer._save_checkpoint

    def recording(self, model, trial):
        saves.append(self.state.global_step)
        return original(self, model, trial)

    monkeypatch.setattr(Trainer, "_save_checkpoint", recording)
    run(_job(tiny_model, "full", max_steps=8, eval_every=4, val_size=val_size), mixture, tmp_path)
    assert saves == saved_at
    assert (tmp_path / "model" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_chunked_loss_trains_exactly_like_the_models_own(tmp_path, mixture, tiny_model, method):
    """fp32, two micro-batches per step: per-step losses and the trained weights agree."""
    runs = {}
    for chunked in (True, False):
        out = tmp_path / str(chunked)
        job = _job(tiny_model, method, chunked_loss=chunked, precision="fp32")
        job.train.grad_accum, job.train.epochs = 2, 2
        target = run(job, mixture, out)
        weights = load_file(next(target.glob("*.safetensors")))
        losses = [r["loss"] for r in read_jsonl(out / "train_log.jsonl") if "loss" in r]
        runs[chunked] = read_json(out / "metrics.json"), losses, weights
    (chunked, losses, weights), (plain, plain_losses, plain_weights) = runs[True], runs[False]
    assert chunked["loss"] == "chunked" and plain["loss"] == "model"
    assert losses == pytest.approx(plain_losses, abs=1e-4) and len(losses) == plain["steps"] >= 4
    assert chunked["probe_loss_after"] == pytest.approx(plain["probe_loss_after"], abs=1e-4)
    assert all(weights[k].allclose(plain_weights[k], atol=1e-4) for k in plain_weights)


@pytest.mark.slow
def test_merged_lora_gives_the_same_outputs(tmp_path, mixture, tiny_model):
    import torch

    run(_job(tiny_model, "lora", merge_lora=True), mixture, tmp_path)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        adapted = load_model(tiny_model, adapter=tmp_path / "adapter")(ids).logits
        merged = load_model(str(tmp_path / "model"))(ids).logits
    assert torch.allclose(adapted, merged, atol=1e-5)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, mixture, tiny_model):
    """torchrun with 2 processes (gloo, CPU) against 1 process at the same global batch of 12."""
    common = {"epochs": 4, "grad_accum": 1, "learning_rate": 1e-2, "max_length": 64, "length_grouping": False}
    lora = LoraArgs(r=8, alpha=16, dropout=0.0)
    run(
        TrainJob(ModelArgs(name=tiny_model), "lora", lora, TrainArgs(batch_size=12, **common)),
        mixture,
        tmp_path / "one",
    )
    run(
        TrainJob(ModelArgs(name=tiny_model), "lora", lora, TrainArgs(batch_size=6, nproc=2, **common)),
        mixture,
        tmp_path / "two",
    )
    one, two = read_json(tmp_path / "one" / "metrics.json"), read_json(tmp_path / "two" / "metrics.json")
    assert one["processes"] == 1 and two["processes"] == 2 and one["steps"] == two["steps"] == 4
    losses = {
        k: [r["loss"] for r in read_jsonl(tmp_path / k / "train_log.jsonl") if "loss" in r]
        for k in ("one", "two")
    }
    assert losses["one"] == pytest.approx(losses["two"], rel=2e-3)
    assert two["probe_loss_after"] == pytest.approx(one["probe_loss_after"], rel=2e-3)
    assert two["probe_loss_after"] < two["probe_loss_before"]


def test_an_accelerate_config_launches_the_run_and_a_wrong_process_count_is_refused(
    tmp_path, mixture, tiny_model
):
    """train.accelerate_config: `accelerate launch` starts the run (on GPUs with docs/accelerate/fsdp.yaml:
    FSDP). On a CPU accelerate starts one process whatever num_processes says: the run refuses, since its key
    counts two (the global batch), instead of training something else or launching again."""
    config = tmp_path / "cpu.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_machines: 1\n"
                      "num_processes: 2\nuse_cpu: true\nmixed_precision: 'no'\n")  # fmt: skip
    train = TrainArgs(batch_size=6, nproc=2, epochs=1, accelerate_config=str(config))
    job = TrainJob(ModelArgs(name=tiny_model), "lora", LoraArgs(r=8, alpha=16, dropout=0.0), train)
    with pytest.raises(BabeltuneError, match="the accelerate launch of 2 processes failed"):
        run(job, mixture, tmp_path / "acc")
    assert not (tmp_path / "acc" / "metrics.json").exists()


def test_a_checkpoint_cut_short_by_a_kill_is_never_resumed_from(tmp_path):
    from babeltune.train.resume import CHECKPOINT_FILES, last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, files in ((2, CHECKPOINT_FILES), (4, ("adapter_model.safetensors",)), (10, ())):
        (tmp_path / f"checkpoint-{step}").mkdir()
        for name in files:
            (tmp_path / f"checkpoint-{step}" / name).write_text("{}" if name == "trainer_state.json" else "x")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]  # half-written ones removed


@pytest.mark.parametrize("env", [{"ACCELERATE_USE_FSDP": "true"}, {"ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}])
def test_no_chunked_loss_where_the_head_is_sharded(monkeypatch, env):
    from babeltune.train.stage import chunked_loss_function

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert chunked_loss_function(model=None, rows=[], collate=None, precision="bf16", wanted=True) is None


@pytest.mark.slow
def test_gradient_checkpointing_trains_the_same_adapter(tmp_path, mixture, tiny_model):
    weights = {}
    for on in (False, True):
        job = _job(tiny_model, "lora", gradient_checkpointing=on, precision="fp32", max_steps=4)
        weights[on] = load_file(run(job, mixture, tmp_path / str(on)) / "adapter_model.safetensors")
        assert read_json(tmp_path / str(on) / "metrics.json")["gradient_checkpointing"] is on
    assert all(weights[True][k].allclose(weights[False][k], atol=1e-5) for k in weights[False])
    assert any(weights[True][k].abs().sum() > 0 for k in weights[True] if "lora_B" in k)


@pytest.mark.slow
def test_full_runs_train_with_the_full_settings(tmp_path, mixture, tiny_model):
    """The paper's full-parameter runs: loss on answers only while LoRA runs also learn the prompt."""
    losses = {}
    for full_loss_on_prompt in (True, False):
        job = _job(tiny_model, "full", max_steps=1, full_loss_on_prompt=full_loss_on_prompt)
        run(job, mixture, tmp_path / str(full_loss_on_prompt))
        losses[full_loss_on_prompt] = read_json(tmp_path / str(full_loss_on_prompt) / "metrics.json")
    # Same model, same probe examples: only which tokens the loss counts differs.
    assert losses[True]["probe_loss_before"] != pytest.approx(losses[False]["probe_loss_before"], abs=1e-3)


def test_job_files_that_name_the_old_module_still_load():
    """Task folders written before train/ was a package say kind: babeltune.train:TrainJob."""
    import importlib

    from babeltune.train import stage

    assert importlib.import_module("babeltune.train").TrainJob is stage.TrainJob
