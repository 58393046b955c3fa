"""GPU reading: training and generation throughput of babeltune's own code paths on one GPU.

A random-weight Llama-architecture model of about 1B parameters (Llama-3.2-1B's shape) in bf16 is
fine-tuned with LoRA and with all parameters through `babeltune.train` on the built-in multilingual data,
then answers test prompts through the `hf` generation backend, one prompt at a time and in batches.
Prints tokens/s and model FLOP utilisation against a bf16 matmul peak measured in the same run, and
writes the figures to ``$OUT/gpu_reading.json`` (or ./gpu_reading.json).

    PYTHONPATH=src python bench/gpu_reading.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch


def matmul_peak(size: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return repeats * 2 * size**3 / (time.perf_counter() - start)


def build_model(folder: Path) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    from babeltune import tiny

    tok = tiny.tokenizer(vocab_size=32000, languages=("en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh"))
    tok.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    from babeltune import mix
    from babeltune.config import DataArgs, GenerateArgs, LoraArgs, MixArgs, ModelArgs, TrainArgs
    from babeltune.data import stage as data_stage
    from babeltune.data.loaders import builtin_test_prompts
    from babeltune.generate import generate_batch, length_sorted_batches
    from babeltune.io import read_json
    from babeltune.models import load_model, load_tokenizer
    from babeltune.templates import build_prompt
    from babeltune.train import TrainJob, run

    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    peak = matmul_peak()
    out["bf16_matmul_peak_tflops"] = round(peak / 1e12, 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params = build_model(root / "model")
        out["parameters"] = params
        data_stage.run(DataArgs(), root)
        mix.run(MixArgs(regimes=["multilingual"]), root / "examples.jsonl", DataArgs().languages, root)
        mixture = root / "multi" / "mixture.jsonl"
        model_args = ModelArgs(name=str(root / "model"), dtype="bfloat16")
        for method, flops in (("lora", 4), ("full", 6)):
            args = TrainArgs(max_steps=25, batch_size=16, grad_accum=1, max_length=512, learning_rate=1e-4,
                             full_learning_rate=1e-5, warmup_ratio=0.0)  # fmt: skip
            run(TrainJob(mixture, model_args, method, LoraArgs(), args), root / method)
            m = read_json(root / method / "metrics.json")
            rate = m["tokens_per_second"]
            out[f"train_{method}"] = {
                "useful_tokens_per_second": rate,
                "seconds": m["seconds"],
                "steps": m["steps"],
                "mfu": round(rate * flops * params / peak, 3),
                "probe_loss": [round(m["probe_loss_before"], 3), round(m["probe_loss_after"], 3)],
                "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            }
            torch.cuda.reset_peak_memory_stats()
            print(method, out[f"train_{method}"], flush=True)

        tokenizer = load_tokenizer(str(root / "model"), padding_side="left")
        model = load_model(str(root / "model"), "bfloat16").eval().to("cuda")
        model.generation_config.min_new_tokens = 128
        gen = GenerateArgs(max_new_tokens=128, stop=[])
        texts = [
            build_prompt("alpaca", tokenizer, p.prompt)
            for p in builtin_test_prompts(["en", "de", "ru", "zh"])
        ]
        generate_batch(model, tokenizer, texts[:4], gen, False)  # warm-up
        for name, size in (("one_at_a_time", 1), ("batch_32", 32), ("batch_96", 96)):
            chosen = texts[:16] if size == 1 else texts
            torch.cuda.synchronize()
            start = time.perf_counter()
            tokens = sum(
                n
                for b in length_sorted_batches(chosen, len, size)
                for _, n in generate_batch(model, tokenizer, b, gen, False)
            )
            torch.cuda.synchronize()
            out[f"generate_{name}_tokens_per_second"] = round(tokens / (time.perf_counter() - start), 1)
            print(name, out[f"generate_{name}_tokens_per_second"], flush=True)
    print(json.dumps(out, indent=2))
    target = Path(os.environ.get("OUT", ".")) / "gpu_reading.json"
    target.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
