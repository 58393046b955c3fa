"""Benchmark: babeltune's default LoRA training against the paper's recipe, on the embedded model.

Both train on the same built-in multilingual mixture for the same number of examples, in one run:
- paper recipe: HF Trainer, micro-batches of 2 in random order, each padded to its longest sequence,
  fp32 (alpaca-lora's setup, no packing, no length grouping);
- babeltune default: micro-batches of 4 grouped by length (little compute spent on padding), automatic
  precision (bf16 autocast where the hardware is fast at it), and the chunked loss (no full logits tensor;
  the head runs only on tokens with labels);
- the default with the model's own loss instead, to show what the chunked loss alone changes;
- TRL's SFTTrainer on the same job (model, examples, template, LoRA settings, maximum length, effective
  batch, learning rate, loss on every token), configured as its documentation recommends for speed here:
  bf16 (this CPU has AMX), length-grouped sampling. Its packing and padding-free options need
  FlashAttention's variable-length kernels to keep attention inside each example; on a CPU (SDPA) they
  would let examples attend to each other, a different job, so they stay off (the GPU reading tries them).
Each training runs in its own process (so its peak resident memory is its own), the two alternate, and the
pair repeats. Prints useful (non-padding) tokens per second of the whole run (min/median/max) and of the
steps alone, their ratio, the achieved FLOP/s as a fraction of a matrix-multiply peak measured on this
machine in the same run, and peak memory.

    python bench/train_throughput.py [--examples 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from report import bench_parser, peak_rss_gb, print_comparison, print_speedup

RECIPES = {  # name: (what it is, TrainArgs settings)
    "paper recipe": (
        "micro-batch 2, random order, fp32, the model's loss",
        dict(batch_size=2, grad_accum=4, length_grouping=False, precision="fp32", chunked_loss=False),
    ),
    "babeltune default": ("micro-batch 4, length-grouped, auto precision, chunked loss", {}),
    "default, model's loss": ("the default with the model's own loss", dict(chunked_loss=False)),
}


def matmul_peak(
    dtype: torch.dtype, shape: tuple[int, int, int] = (1024, 1024, 1024), seconds: float = 3.0
) -> float:
    """FLOP/s of an (m x k) @ (k x n) matmul on this machine (the best of several timed bursts)."""
    m, k, n = shape
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * m * k * n / (time.perf_counter() - start))
    return best


JOB = dict(epochs=1, max_length=256, warmup_ratio=0.0)  # what every training side of the benchmarks runs


def build_mixture(examples: int, root: Path) -> Path:
    """The benchmarks' training data: ``examples`` of the built-in data, downsampled multilingual."""
    from babeltune import mix
    from babeltune.config import DataArgs, MixArgs
    from babeltune.data import stage as data_stage

    data_stage.run(DataArgs(), root)
    mix.run(MixArgs(regimes=["multilingual-downsampled"], budget=examples), root / "examples.jsonl",
            DataArgs().languages, root)  # fmt: skip
    return root / "multi-down" / "mixture.jsonl"


def train_once(recipe: str, mixture: Path, out: Path) -> None:
    """Child process: train one recipe, print its metrics and peak memory as one JSON line."""
    from babeltune.config import LoraArgs, ModelArgs, TrainArgs
    from babeltune.io import read_json
    from babeltune.train.stage import TrainJob, run

    args = TrainArgs(**JOB, **RECIPES[recipe][1])
    run(TrainJob(ModelArgs(), "lora", LoraArgs(), args), mixture, out)
    print(json.dumps({**read_json(out / "metrics.json"), "peak_rss_gb": peak_rss_gb()}))


TRL = "TRL SFTTrainer"


def trl_once(mixture: Path, out: Path) -> None:
    """Child process: TRL's SFTTrainer on the babeltune default's job; prints the same metrics."""
    import datasets
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from babeltune.config import LoraArgs, TrainArgs
    from babeltune.io import read_jsonl
    from babeltune.models import load_model, load_tokenizer, lora_targets
    from babeltune.templates import build_prompt

    cfg, lora = TrainArgs(), LoraArgs()
    tokenizer = load_tokenizer("builtin:smollm2-135m")
    model = load_model("builtin:smollm2-135m")
    rows = [{"prompt": build_prompt("alpaca", tokenizer, r["instruction"], r.get("input", "")),
             "completion": r["output"]} for r in read_jsonl(mixture)]  # fmt: skip
    args = SFTConfig(
        output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, warmup_steps=0,
        lr_scheduler_type=cfg.scheduler, max_length=256, completion_only_loss=False, bf16=True,
        train_sampling_strategy="group_by_length", include_num_input_tokens_seen="non_padding",
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    peft = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                      target_modules=lora_targets(model.config.model_type))  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=peft)  # fmt: skip
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    useful = trainer.state.num_input_tokens_seen
    print(json.dumps({"precision": "bf16", "tokens_per_second": useful / seconds, "step_tokens_per_second": None,
                      "train_loss": result.training_loss, "peak_rss_gb": peak_rss_gb()}))  # fmt: skip


def train_in_child(recipe: str, mixture: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", recipe, "--mixture", str(mixture), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument("--examples", type=int, default=48, help="examples each recipe trains on")
    parser.add_argument("--child", choices=[*RECIPES, TRL], help=argparse.SUPPRESS)
    parser.add_argument("--mixture", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return (
            trl_once(args.mixture, args.out)
            if args.child == TRL
            else train_once(args.child, args.mixture, args.out)
        )

    from babeltune.models import load_model

    names = [*RECIPES, *([TRL] if importlib.util.find_spec("trl") else [])]  # TRL: `make setup-vllm`
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mixture = build_mixture(args.examples, root)
        peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
        for i in range(args.repeats):
            for name in names:
                runs[name].append(train_in_child(name, mixture, root / f"{name}-{i}"))
    params = sum(p.numel() for p in load_model("builtin:smollm2-135m").parameters())
    flops_per_token = 4 * params  # LoRA: forward (2N) + activation gradients (2N); frozen weights get none
    print(
        f"LoRA training, embedded SmolLM2-135M, {args.examples} examples, {args.repeats} runs of each "
        f"(alternating, one process each), {torch.get_num_threads()} threads"
    )
    print(
        "  matmul peak measured here (1024x1024): "
        + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items())
    )
    described = {
        **{k: v[0] for k, v in RECIPES.items()},
        TRL: "bf16, length-grouped, micro-batch 4 x 2, no packing",
    }
    for name, ms in runs.items():
        precision = ms[0]["precision"]
        loss = (f"probe loss {ms[0]['probe_loss_before']:.3f} -> {ms[0]['probe_loss_after']:.3f}, "
                if "probe_loss_before" in ms[0] else "")  # fmt: skip
        step_rates = [m["step_tokens_per_second"] for m in ms if m["step_tokens_per_second"]]
        steps = f"{statistics.median(step_rates):.1f}" if step_rates else "n/a (one logged step)"
        whole = statistics.median(m["tokens_per_second"] for m in ms)
        print(
            f"  {name:<18} ({described[name]}): {precision}, "
            f"steps alone {steps} useful tokens/s, MFU {whole * flops_per_token / peaks[precision]:.1%} "
            f"of the {precision} peak (whole run), peak RSS {max(m['peak_rss_gb'] for m in ms):.2f} GB, "
            f"{loss}train loss {statistics.median(m['train_loss'] for m in ms):.3f}"
        )
    rates = {name: [m["tokens_per_second"] for m in ms] for name, ms in runs.items()}
    print_comparison(rates, "useful tokens/s", "babeltune's default over the paper's recipe", 1.5)
    print_speedup(
        rates, "babeltune default", "default, model's loss", "the chunked loss over the model's own"
    )
    if TRL in rates:
        print_speedup(rates, "babeltune default", TRL, "babeltune's default over TRL's SFTTrainer")


if __name__ == "__main__":
    main()
