"""Benchmark: babeltune's default LoRA training against the paper's recipe, on the embedded model.

Both train on the same built-in multilingual mixture for the same number of examples, in one run:
- paper recipe: HF Trainer, micro-batches of 2 in random order, each padded to its longest sequence,
  fp32 (alpaca-lora's setup, no packing, no length grouping);
- babeltune default: micro-batches of 4 grouped by length (little compute spent on padding), automatic
  precision (bf16 autocast where the hardware is fast at it), and the chunked loss (no full logits tensor;
  the head runs only on tokens with labels);
- the default with the model's own loss instead, to show what the chunked loss alone changes.
Each training runs in its own process (so its peak resident memory is its own), the two alternate, and the
pair repeats. Prints useful (non-padding) tokens per second of the whole run (min/median/max) and of the
steps alone, their ratio, the achieved FLOP/s as a fraction of a matrix-multiply peak measured on this
machine in the same run, and peak memory.

    python bench/train_throughput.py [--examples 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
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


def matmul_peak(dtype: torch.dtype, size: int = 1024, seconds: float = 3.0) -> float:
    """FLOP/s of a square matmul on this machine (the best of several timed bursts)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * size**3 / (time.perf_counter() - start))
    return best


def train_once(recipe: str, mixture: Path, out: Path) -> None:
    """Child process: train one recipe, print its metrics and peak memory as one JSON line."""
    from babeltune.config import LoraArgs, ModelArgs, TrainArgs
    from babeltune.io import read_json
    from babeltune.train import TrainJob, run

    args = TrainArgs(epochs=1, max_length=256, warmup_ratio=0.0, **RECIPES[recipe][1])
    run(TrainJob(ModelArgs(), "lora", LoraArgs(), args), mixture, out)
    print(json.dumps({**read_json(out / "metrics.json"), "peak_rss_gb": peak_rss_gb()}))


def train_in_child(recipe: str, mixture: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", recipe, "--mixture", str(mixture), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument("--examples", type=int, default=48, help="examples each recipe trains on")
    parser.add_argument("--child", choices=RECIPES, help=argparse.SUPPRESS)
    parser.add_argument("--mixture", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return train_once(args.child, args.mixture, args.out)

    from babeltune import mix
    from babeltune.config import DataArgs, MixArgs
    from babeltune.data import stage as data_stage
    from babeltune.models import load_model

    runs: dict[str, list[dict]] = {name: [] for name in RECIPES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_stage.run(DataArgs(), root)
        mix.run(
            MixArgs(regimes=["multilingual-downsampled"], budget=args.examples),
            root / "examples.jsonl",
            DataArgs().languages,
            root,
        )
        mixture = root / "multi-down" / "mixture.jsonl"
        peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
        for i in range(args.repeats):
            for name in RECIPES:
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
    for name, ms in runs.items():
        precision = ms[0]["precision"]
        step_rates = [m["step_tokens_per_second"] for m in ms if m["step_tokens_per_second"]]
        steps = f"{statistics.median(step_rates):.1f}" if step_rates else "n/a (one logged step)"
        whole = statistics.median(m["tokens_per_second"] for m in ms)
        print(
            f"  {name:<18} ({RECIPES[name][0]}): {precision}, "
            f"steps alone {steps} useful tokens/s, MFU {whole * flops_per_token / peaks[precision]:.1%} "
            f"of the {precision} peak (whole run), peak RSS {max(m['peak_rss_gb'] for m in ms):.2f} GB, "
            f"probe loss {ms[0]['probe_loss_before']:.3f} -> {ms[0]['probe_loss_after']:.3f}"
        )
    rates = {name: [m["tokens_per_second"] for m in ms] for name, ms in runs.items()}
    print_comparison(rates, "useful tokens/s", "babeltune's default over the paper's recipe", 1.5)
    print_speedup(
        rates, "babeltune default", "default, model's loss", "the chunked loss over the model's own"
    )


if __name__ == "__main__":
    main()
