"""Benchmark: babeltune's default LoRA training against the paper's recipe, on the embedded model.

Both train on the same built-in multilingual mixture for the same number of examples, in one run:
- paper recipe: HF Trainer, micro-batches of 2 in random order, each padded to its longest sequence
  (alpaca-lora's setup, no packing, no length grouping);
- babeltune default: micro-batches of 4 grouped by length (little compute spent on padding).
Prints useful (non-padding) tokens per second for each, their ratio, and the achieved FLOP/s as a
fraction of a matrix-multiply peak measured on this machine in the same run.

    python bench/train_throughput.py [--examples 48]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


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


def train_once(mixture: Path, out: Path, **train) -> dict:
    from babeltune.config import LoraArgs, ModelArgs, TrainArgs
    from babeltune.io import read_json
    from babeltune.train import TrainJob, run

    args = TrainArgs(epochs=1, max_length=256, warmup_ratio=0.0, **train)
    run(TrainJob(mixture, ModelArgs(), "lora", LoraArgs(), args), out)
    return read_json(out / "metrics.json")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=48, help="examples each recipe trains on")
    args = parser.parse_args()

    from babeltune import mix
    from babeltune.config import DataArgs, MixArgs
    from babeltune.data import stage as data_stage
    from babeltune.models import load_model

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
        runs = {
            "paper recipe (micro-batch 2, random order)": train_once(
                mixture, root / "paper", batch_size=2, grad_accum=4, length_grouping=False, precision="fp32"
            ),
            "babeltune default (micro-batch 4, grouped, auto precision)": train_once(
                mixture, root / "babeltune"
            ),
        }
    params = sum(p.numel() for p in load_model("builtin:smollm2-135m").parameters())
    flops_per_token = 4 * params  # LoRA: forward (2N) + activation gradients (2N); frozen weights get none
    print(
        f"LoRA training, embedded SmolLM2-135M, {args.examples} examples, {torch.get_num_threads()} threads"
    )
    print(
        "  matmul peak measured here (1024x1024): "
        + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items())
    )
    for name, m in runs.items():
        rate = m["tokens_per_second"]
        mfu = rate * flops_per_token / peaks[m["precision"]]
        print(
            f"  {name:<58} {rate:7.1f} useful tokens/s  {m['seconds']:6.1f} s  {m['precision']}  "
            f"MFU {mfu:5.1%} of the {m['precision']} peak  probe loss {m['probe_loss_before']:.3f} -> "
            f"{m['probe_loss_after']:.3f}"
        )
    base, ours = (m["tokens_per_second"] for m in runs.values())
    print(
        f"  speed-up of babeltune's default over the paper's recipe: {ours / base:.2f}x (target: at least 1.5x)"
    )


if __name__ == "__main__":
    main()
