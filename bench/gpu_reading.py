"""GPU reading: training and generation throughput of babeltune's own code paths on one GPU.

A random-weight Llama-architecture model of about 1B parameters (Llama-3.2-1B's shape) in bf16 is
fine-tuned with LoRA and with all parameters through `babeltune.train` on the built-in multilingual data
(after a short warm-up training, at micro-batches of 16 and 64; full training at 64 also with the model's
own loss and with gradient checkpointing), then answers test prompts through the
`hf` generation backend, one prompt at a time and in batches, and through `vllm` when it is installed;
then 9 LoRA adapters (the paper's 9 monolingual runs) answer through `vllm` (one engine, LoRA per request)
and through `hf`; TRL's SFTTrainer trains LoRA padded, padding-free (flash-attention variable-length
kernels, DataCollatorWithFlattening) and with Liger's fused linear cross-entropy, against babeltune's
chunked loss above.
Prints tokens/s and model FLOP utilisation against a bf16 matmul peak measured in the same run, for the
whole run and for the training steps alone (without start-up and validation), and writes the figures to
``$OUT/gpu_reading.json`` (or ./gpu_reading.json). A failing part records its error and the rest goes on.

    PYTHONPATH=src python bench/gpu_reading.py            # on a GPU machine
    PYTHONPATH=src python bench/gpu_reading.py --dry-run  # a tiny model on the CPU: checks the script runs
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from report import bench_parser

SETTINGS = {
    "gpu": dict(device="cuda", hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, vocab=32000,
                steps=25, batches=(16, 64), new_tokens=128, generation_batches=(1, 32, 96), matmul=8192, adapters=9),
    "dry-run": dict(device="cpu", hidden=256, intermediate=512, layers=2, heads=4, kv_heads=2, vocab=2000,
                    steps=3, batches=(2, 4), new_tokens=8, generation_batches=(1, 8), matmul=256, adapters=2),
}  # fmt: skip


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, size: int, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return repeats * 2 * size**3 / (time.perf_counter() - start)


def build_model(folder: Path, s: dict) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    from babeltune import tiny

    tok = tiny.tokenizer(
        vocab_size=s["vocab"], languages=("en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh")
    )
    tok.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=s["hidden"], intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
        max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def peak_memory_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 1) if device == "cuda" else None


def training(root: Path, mixture: Path, s: dict, params: int, peak: float) -> dict:
    from babeltune.config import LoraArgs, ModelArgs, TrainArgs
    from babeltune.io import read_json
    from babeltune.train.stage import TrainJob, run

    model_args = ModelArgs(name=str(root / "model"), dtype="bfloat16")

    def train(method: str, batch: int, steps: int, **extra) -> dict:
        args = TrainArgs(max_steps=steps, batch_size=batch, grad_accum=1, max_length=512, learning_rate=1e-4,
                         full_learning_rate=1e-5, warmup_ratio=0.0, **extra)  # fmt: skip
        folder = root / f"{method}-{batch}-{steps}-{len(extra)}"
        run(TrainJob(model_args, method, LoraArgs(), args), mixture, folder)
        return read_json(folder / "metrics.json")

    out = {}
    train("lora", s["batches"][0], 3)  # warm-up: CUDA context, cuBLAS handles, kernel choices
    big = s["batches"][-1]
    variants = [(m, b, {}) for m in ("lora", "full") for b in s["batches"]] + [
        ("full", big, {"chunked_loss": False}),  # what the chunked loss changes on a GPU
        ("full", big, {"gradient_checkpointing": True}),
    ]
    for method, batch, extra in variants:
        flops = 4 if method == "lora" else 6  # LoRA: no weight gradients for the frozen base
        if s["device"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
        m = train(method, batch, s["steps"], **extra)
        whole, steps = m["tokens_per_second"], m["step_tokens_per_second"] or m["tokens_per_second"]
        name = f"train_{method}_batch_{batch}" + "".join(f"_{k}_{v}" for k, v in extra.items())
        out[name] = row = {
            "useful_tokens_per_second": whole,
            "steps_alone_tokens_per_second": steps,
            "useful_tokens_per_step": round(m["useful_tokens"] / m["steps"]),
            "seconds": m["seconds"],
            "mfu": round(whole * flops * params / peak, 3),
            "mfu_steps_alone": round(steps * flops * params / peak, 3),
            "loss": m["loss"],
            "probe_loss": [round(m["probe_loss_before"], 3), round(m["probe_loss_after"], 3)],
            "peak_memory_gb": peak_memory_gb(s["device"]),
        }
        print(name, row, flush=True)
    return out


def hf_generation(root: Path, s: dict, texts: list[str]) -> dict:
    from babeltune.config import GenerateArgs
    from babeltune.inference.decoding import length_sorted_batches
    from babeltune.inference.hf import generate_batch
    from babeltune.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(root / "model"), padding_side="left")
    model = load_model(str(root / "model"), "bfloat16").eval().to(s["device"])
    model.generation_config.min_new_tokens = s["new_tokens"]  # equal work whatever the random weights say
    gen = GenerateArgs(max_new_tokens=s["new_tokens"], stop=[])
    generate_batch(model, tokenizer, texts[:4], gen, False)  # warm-up
    out = {}
    for size in s["generation_batches"]:
        chosen = texts[:16] if size == 1 else texts
        synchronize(s["device"])
        start = time.perf_counter()
        tokens = sum(
            n
            for b in length_sorted_batches(chosen, len, size)
            for _, n in generate_batch(model, tokenizer, b, gen, False)
        )
        synchronize(s["device"])
        out[f"generate_hf_batch_{size}_tokens_per_second"] = round(tokens / (time.perf_counter() - start), 1)
        print("hf", size, out[f"generate_hf_batch_{size}_tokens_per_second"], flush=True)
    return out


def vllm_generation(root: Path, s: dict, prompts: list) -> dict:
    """babeltune's `vllm` backend over all prompts at once (vLLM schedules its own batches)."""
    from babeltune.config import GenerateArgs, ModelArgs
    from babeltune.generate import GenerateJob, run
    from babeltune.inference.target import Target
    from babeltune.io import read_jsonl, write_jsonl

    write_jsonl(root / "prompts.jsonl", [p.to_dict() for p in prompts])
    gen = GenerateArgs(backend="vllm", max_new_tokens=s["new_tokens"], stop=[])
    target = Target.base(ModelArgs(name=str(root / "model")))
    start = time.perf_counter()  # includes vLLM's start-up: what a user waits for
    run(GenerateJob(gen, "bench"), target, root / "prompts.jsonl", root / "vllm")
    seconds = time.perf_counter() - start
    tokens = sum(r["new_tokens"] for r in read_jsonl(root / "vllm" / "responses.jsonl"))
    return {
        "generate_vllm_tokens_per_second_with_startup": round(tokens / seconds, 1),
        "vllm_seconds": seconds,
    }


def adapters(root: Path, count: int) -> list[Path]:
    """``count`` LoRA adapters with random (non-zero) weights on the reading's model: the paper's 9
    monolingual runs, as far as serving cost goes."""
    from peft import LoraConfig, get_peft_model

    from babeltune.models import load_model, lora_targets

    folders = []
    for i in range(count):
        torch.manual_seed(i)
        base = load_model(str(root / "model"), "bfloat16")
        config = LoraConfig(r=8, lora_alpha=16, init_lora_weights=False,
                            target_modules=lora_targets(base.config.model_type))  # fmt: skip
        get_peft_model(base, config).save_pretrained(root / f"adapter-{i}")
        folders.append(root / f"adapter-{i}")
    return folders


def many_adapters(root: Path, s: dict, prompts: list, backend: str) -> dict:
    """Every adapter answers every prompt through babeltune's ``backend``: vllm keeps one engine for all of
    them (LoRA per request), hf loads the base with each adapter in turn. Seconds include every start-up."""
    from babeltune.config import GenerateArgs
    from babeltune.generate import GenerateJob, run
    from babeltune.inference.target import Target
    from babeltune.io import read_jsonl, write_jsonl

    write_jsonl(root / "prompts.jsonl", [p.to_dict() for p in prompts])
    gen = GenerateArgs(backend=backend, max_new_tokens=s["new_tokens"], stop=[], batch_size=64)
    folders = sorted(root.glob("adapter-*"))
    start, tokens = time.perf_counter(), 0
    for folder in folders:
        target = Target(str(root / "model"), folder, "alpaca", "bfloat16")
        out = root / f"{backend}-{folder.name}"
        run(GenerateJob(gen, folder.name), target, root / "prompts.jsonl", out)
        tokens += sum(r["new_tokens"] for r in read_jsonl(out / "responses.jsonl"))
    seconds = time.perf_counter() - start
    name = f"generate_{backend}_{len(folders)}_adapters"
    print(name, round(tokens / seconds, 1), flush=True)
    return {
        f"{name}_tokens_per_second_with_startup": round(tokens / seconds, 1),
        f"{name}_seconds": round(seconds, 1),
    }


def trl_training(root: Path, mixture: Path, s: dict, params: int, peak: float) -> dict:
    """TRL's SFTTrainer on LoRA at the largest micro-batch: padded, padding-free (flash-attention's
    variable-length kernels through DataCollatorWithFlattening) and with Liger's fused linear cross-entropy.
    A variant whose kernels are not installed records why."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from babeltune.io import read_jsonl
    from babeltune.models import load_tokenizer, lora_targets
    from babeltune.templates import build_prompt

    tokenizer = load_tokenizer(str(root / "model"))
    rows = [{"prompt": build_prompt("alpaca", tokenizer, r["instruction"], r.get("input", "")),
             "completion": r["output"]} for r in read_jsonl(mixture)]  # fmt: skip
    variants = {"padded": {}, "padding_free": {"padding_free": True}, "liger": {"use_liger_kernel": True}}
    out = {}
    for name, extra in variants.items():
        try:
            attention = "flash_attention_2" if name == "padding_free" else "sdpa"
            model = AutoModelForCausalLM.from_pretrained(
                root / "model", dtype=torch.bfloat16, attn_implementation=attention
            )
            args = SFTConfig(
                output_dir=str(root / f"trl-{name}"), max_steps=s["steps"], per_device_train_batch_size=s["batches"][-1],
                learning_rate=1e-4, max_length=512, completion_only_loss=False, bf16=True, logging_steps=1,
                save_strategy="no", report_to=[], include_num_input_tokens_seen="non_padding",
                use_cpu=s["device"] == "cpu", **extra,
            )  # fmt: skip
            peft = LoraConfig(r=8, lora_alpha=16, target_modules=lora_targets(model.config.model_type))
            trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, peft_config=peft)  # fmt: skip
            start = time.perf_counter()
            trainer.train()
            rate = trainer.state.num_input_tokens_seen / (time.perf_counter() - start)
            out[f"trl_lora_{name}"] = {
                "useful_tokens_per_second": round(rate, 1),
                "mfu": round(rate * 4 * params / peak, 3),
            }
        except Exception as err:  # noqa: BLE001 - a missing kernel is a reading too
            out[f"trl_lora_{name}_error"] = f"{type(err).__name__}: {err}"[:500]
        print(name, out.get(f"trl_lora_{name}") or out[f"trl_lora_{name}_error"], flush=True)
    return out


def guarded(out: dict, name: str, part, *args) -> None:
    """Run one part; a failure is recorded under its name and the reading goes on."""
    try:
        out.update(part(*args))
    except Exception as err:  # noqa: BLE001 - a benchmark reports every failure, whatever it is
        out[f"{name}_error"] = f"{type(err).__name__}: {err}"[:500]
        print(name, "failed:", out[f"{name}_error"], flush=True)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--dry-run", action="store_true", help="a tiny model on the CPU, to check the script")
    args = parser.parse_args()
    s = SETTINGS["dry-run" if args.dry_run else "gpu"]

    from babeltune import mix
    from babeltune.config import DataArgs, MixArgs
    from babeltune.data import stage as data_stage
    from babeltune.data.loaders import builtin_test_prompts
    from babeltune.models import load_tokenizer
    from babeltune.templates import build_prompt

    device_name = torch.cuda.get_device_name(0) if s["device"] == "cuda" else "cpu (dry run)"
    out = {"device": device_name, "torch": torch.__version__}
    peak = matmul_peak(s["device"], s["matmul"])
    out["bf16_matmul_peak_tflops"] = round(peak / 1e12, 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params = out["parameters"] = build_model(root / "model", s)
        data_stage.run(DataArgs(), root)
        mix.run(MixArgs(regimes=["multilingual"]), root / "examples.jsonl", DataArgs().languages, root)
        guarded(out, "training", training, root, root / "multi" / "mixture.jsonl", s, params, peak)
        if importlib.util.find_spec("trl"):
            guarded(
                out, "trl_training", trl_training, root, root / "multi" / "mixture.jsonl", s, params, peak
            )
        else:
            out["trl"] = "not installed"

        prompts = builtin_test_prompts(["en", "de", "ru", "zh"])
        tokenizer = load_tokenizer(str(root / "model"))
        texts = [build_prompt("alpaca", tokenizer, p.prompt) for p in prompts]
        guarded(out, "hf_generation", hf_generation, root, s, texts)
        gc.collect()
        if s["device"] == "cuda":
            torch.cuda.empty_cache()  # vLLM wants most of the GPU's memory free
        adapters(root, s["adapters"])
        guarded(out, "hf_adapters", many_adapters, root, s, prompts, "hf")
        if importlib.util.find_spec("vllm"):
            guarded(out, "vllm_generation", vllm_generation, root, s, prompts)
            guarded(out, "vllm_adapters", many_adapters, root, s, prompts, "vllm")
        else:
            out["vllm"] = "not installed"
    print(json.dumps(out, indent=2))
    target = Path(os.environ.get("OUT", ".")) / "gpu_reading.json"
    target.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
