"""Profile: where one LoRA training run's time goes (babeltune's default on the embedded model).

Runs the default training job once under torch.profiler (the training loop only: not the model load or the
probe evaluation) and prints the time in each kind of operator, what the matrix products achieve against
a peak measured on this machine at the model's own shapes and at 1024x1024, and so what bounds the model
FLOP utilisation (MFU). Run it on an idle machine: other jobs on the cores move every figure.

    python bench/train_profile.py [--examples 32] [--batch-size 4] [--grad-accum 2]
"""

from __future__ import annotations

import collections
import tempfile
import time
from pathlib import Path

import torch
from report import bench_parser
from train_throughput import JOB, build_mixture, matmul_peak

# operator name -> kind; what is not named is "other"
KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
    "attention (SDPA)": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
    "dtype casts and copies": ("aten::to", "aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous"),
    "element-wise (norms, SiLU, RoPE, adds)": (
        "aten::mul", "aten::add", "aten::silu", "aten::pow", "aten::mean", "aten::rsqrt", "aten::cat",
        "aten::neg", "aten::sub", "aten::div", "aten::exp", "aten::sigmoid", "aten::where", "aten::dropout",
        "aten::native_dropout", "aten::bernoulli", "aten::fill_", "aten::zero_", "aten::zeros", "aten::sum",
        "aten::logsumexp", "aten::gather", "aten::index", "aten::embedding", "aten::masked_fill",
    ),
    "optimizer (AdamW)": ("aten::_fused_adamw", "aten::_foreach", "Optimizer.step"),
}  # fmt: skip


def kind_of(name: str) -> str:
    for kind, prefixes in KINDS.items():
        if name.startswith(prefixes):
            return kind
    return "other"


def mm_flops(event) -> float:
    """FLOPs of one aten::mm / addmm / bmm call, from its recorded input shapes."""
    shapes = [s for s in event.input_shapes if s]
    if event.key == "aten::bmm" and len(shapes) >= 2:
        (b, m, k), (_, _, n) = shapes[0], shapes[1]
        return 2.0 * b * m * k * n
    mats = [s for s in shapes if len(s) == 2]
    if len(mats) >= 2:
        (m, k), (_, n) = mats[-2], mats[-1]
        return 2.0 * m * k * n
    return 0.0


def profile_training(examples: int, batch_size: int, grad_accum: int, root: Path):
    """Train the default job on ``examples`` built-in examples with the profiler on during ``train()``."""
    import transformers

    from babeltune.config import LoraArgs, ModelArgs, TrainArgs
    from babeltune.io import read_json
    from babeltune.train.stage import TrainJob, run

    mixture = build_mixture(examples, root)
    profiled = {}
    train = transformers.Trainer.train

    def train_profiled(self, *args, **kwargs):  # only the loop: not the model load or the probe evaluation
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True
        ) as p:
            start = time.perf_counter()
            result = train(self, *args, **kwargs)
            profiled["seconds"] = time.perf_counter() - start
        profiled["events"] = p.key_averages(group_by_input_shape=True)
        return result

    transformers.Trainer.train = train_profiled
    try:
        cfg = TrainArgs(**JOB, batch_size=batch_size, grad_accum=grad_accum)
        run(TrainJob(ModelArgs(), "lora", LoraArgs(), cfg), mixture, root / "run")
    finally:
        transformers.Trainer.train = train
    return profiled, read_json(root / "run" / "metrics.json")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        profiled, metrics = profile_training(args.examples, args.batch_size, args.grad_accum, Path(tmp))
    seconds, events = profiled["seconds"], profiled["events"]
    self_time = collections.Counter()
    mm_time, flops, shapes = 0.0, 0.0, collections.Counter()
    for e in events:
        self_time[kind_of(e.key)] += e.self_cpu_time_total / 1e6
        if e.key in ("aten::mm", "aten::addmm", "aten::bmm"):
            f = mm_flops(e) * e.count
            mm_time += e.self_cpu_time_total / 1e6
            flops += f
            shapes[tuple(map(tuple, e.input_shapes[:3]))] += f
    total = sum(self_time.values())
    params = metrics["parameters"]
    model_flops = 4 * params * metrics["useful_tokens"]  # as bench/train_throughput.py counts it
    peak_1024 = matmul_peak(torch.bfloat16)
    print(
        f"LoRA training profile, embedded SmolLM2-135M, {args.examples} examples, micro-batch "
        f"{args.batch_size} x {args.grad_accum}, {metrics['precision']}, {torch.get_num_threads()} threads"
    )
    print(f"  train() {seconds:.1f} s ({metrics['useful_tokens']} useful tokens, "
          f"{metrics['useful_tokens'] / seconds:.1f}/s under the profiler); operators' self time {total:.1f} s:")  # fmt: skip
    for kind, t in self_time.most_common():
        print(f"    {kind:<40} {t:6.1f} s  {t / total:6.1%}")
    print(f"  matrix products: {flops / 1e12:.2f} TFLOP in {mm_time:.1f} s = {flops / mm_time / 1e9:.0f} GFLOP/s "
          f"(bf16 peak at 1024x1024 here: {peak_1024 / 1e9:.0f} GFLOP/s)")  # fmt: skip
    print("  the shapes that carry most FLOPs, and their own peak here:")
    for shape, f in shapes.most_common(6):
        a, b = [s for s in shape if len(s) >= 2][-2:]
        m, k, n = a[-2], a[-1], b[-1]
        peak = matmul_peak(torch.bfloat16, shape=(m, k, n), seconds=1.0)
        print(
            f"    {m}x{k} @ {k}x{n}: {f / flops:5.1%} of the FLOPs, peak at this shape {peak / 1e9:5.0f} GFLOP/s"
        )
    print(f"  MFU of the loop (4 x parameters x useful tokens / time / 1024x1024 peak): "
          f"{model_flops / seconds / peak_1024:.1%}; the matrix products alone would allow "
          f"{model_flops / mm_time / peak_1024:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
