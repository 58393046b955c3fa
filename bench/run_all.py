"""Run every benchmark in bench/ and write bench/RESULTS.md: the machine, then each benchmark's own report
(baseline and babeltune measured in the same run, min/median/max where it repeats).

    python bench/run_all.py            # all benchmarks but the end-to-end run
    python bench/run_all.py --e2e      # also `babeltune run` of configs/default.yaml from nothing, then a rerun
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WHERE_FROM = """## Where the speed comes from

- Translation: batches of 16 segments sorted by length, so a batch pads little and the encoder-decoder runs
  16 sequences per kernel launch; next: CTranslate2 int8 and caching repeated segments across datasets.
- Training: bf16 autocast on CPUs with AVX512-BF16 (bf16 matmul measured at about 4x fp32 here) and
  micro-batches of 4 grouped by length (less padding, better cache use than 8); next: sequence packing
  and a fused cross-entropy over the 49k vocabulary, which dominates memory.
- Generation: left-padded batches sorted by prompt length with the KV cache, stop strings that end finished
  answers early, bf16 autocast (1.46x over fp32 batched); next: vLLM on GPUs, continuous batching in serve.
- Language ID: fastText's linear model, one call per text (about 46 us); next: nothing needed.
- Judging: bounded concurrency hides endpoint latency; next: request batching for local judges.
"""

BENCHES = ["translate_batching.py", "train_throughput.py", "generate_batching.py", "langid_and_judge.py"]


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
    lines = [
        line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{'")
    ]  # Trainer logs
    return "\n".join(lines) if proc.returncode == 0 else f"FAILED ({proc.returncode}):\n{proc.stderr[-2000:]}"


def end_to_end() -> str:
    """`babeltune run` of the default config from an empty run directory and model cache, then a rerun."""
    out = Path(tempfile.mkdtemp())
    env = dict(os.environ, BABELTUNE_CACHE=str(out / "cache"))
    cmd = [sys.executable, "-m", "babeltune", "run", "configs/default.yaml", f"--output_dir={out / 'run'}"]
    times = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=HERE.parent, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    stages: dict[str, float] = {}
    import json

    for done in (out / "run").glob("*/*/.done.json"):
        row = json.loads(done.read_text())
        stages[row["stage"]] = stages.get(row["stage"], 0.0) + row["seconds"]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    shutil.rmtree(out, ignore_errors=True)
    breakdown = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(stages.items(), key=lambda kv: -kv[1]))
    return (f"end to end (configs/default.yaml): first run {times[0]:.0f} s ({breakdown}); rerun {times[1]:.1f} s "
            f"= {100 * times[1] / times[0]:.1f} % of the first (target: under 5 %); peak RSS {peak:.1f} GB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    (HERE / "RESULTS.md").write_text("\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
