"""One inference loader and one precision rule: generate, serve and the local judge load a checkpoint alike."""

import torch

from babeltune import checkpoint
from babeltune.config import GenerateArgs, TestArgs
from babeltune.data import stage as data_stage
from babeltune.generate import GenerateJob
from babeltune.generate import run as generate
from babeltune.inference import hf
from babeltune.inference.target import Target
from babeltune.io import read_jsonl
from babeltune.models import load_model, load_tokenizer


def test_a_bf16_checkpoint_loads_in_bf16_for_generate_serve_and_the_local_judge(
    tmp_path, tiny_model, monkeypatch
):
    folder = tmp_path / "bf16"
    load_model(tiny_model, "bfloat16").save_pretrained(folder)
    load_tokenizer(tiny_model).save_pretrained(folder)
    checkpoint.describe(folder, checkpoint.Checkpoint(tiny_model, "full", "alpaca", "bfloat16"))
    loaded = []
    real = hf.load_for_inference

    def spy(target):
        tokenizer, model = real(target)
        loaded.append(model.dtype)
        return tokenizer, model

    monkeypatch.setattr(hf, "load_for_inference", spy)
    prompts = data_stage.run_tests(TestArgs(languages=["en"], max_prompts=2), tmp_path)
    job = GenerateJob(GenerateArgs(max_new_tokens=4, backend="hf"), "bf16")
    rows = read_jsonl(generate(job, Target.of(folder), prompts, tmp_path / "gen"))
    assert {r["decoding"]["precision"] for r in rows} == {"bf16"} and {
        r["decoding"]["backend"] for r in rows
    } == {"hf"}

    from babeltune import serve

    monkeypatch.setattr(serve.engine, "load_for_inference", spy)
    served = serve.load(str(folder))
    assert served.bf16 and served.model.dtype == torch.bfloat16
    hf.cached_for_inference.cache_clear()  # the local judge's and the causal translator's loader
    _, judged = hf.cached_for_inference(str(folder))
    assert loaded[:2] == [torch.bfloat16] * 2 and judged.dtype == torch.bfloat16
    from babeltune.evaluate.judge import loaded_engine  # the local judge in generate mode: an engine

    engine = loaded_engine("hf", str(folder), 2)
    assert loaded[3:] == [torch.bfloat16] and engine.precision == "bf16" and not engine.bf16  # no autocast


def test_a_target_is_located_from_a_checkpoint_an_adapter_or_a_name(tmp_path, tiny_model):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    checkpoint.describe(folder, checkpoint.Checkpoint("base-model", "lora", "chat", "bfloat16"))
    assert Target.locate(str(folder)) == Target("base-model", folder, "chat", "bfloat16")
    assert Target.locate(str(folder), template="alpaca").template == "alpaca"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "named-base"}')
    assert Target.locate(str(adapter)) == Target("named-base", adapter)
    assert Target.locate(str(adapter), base="other").weights == "other"
    assert Target.locate(tiny_model) == Target(tiny_model)
