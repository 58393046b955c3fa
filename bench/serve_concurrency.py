"""Benchmark: `babeltune serve` answering clients one after another against 16 clients at once, and vLLM's
OpenAI server (`babeltune serve --engine vllm`) under the same 16 clients.

The embedded model behind a real HTTP server on 127.0.0.1, the official openai client, the same prompts;
answers pinned to the same number of new tokens so every side does equal work. The in-house server answers
concurrent requests that arrive while the model is busy together in one batch; vLLM batches continuously.
Prints tokens/s (min/median/max) and the p50/p95 latency of one request.

    python bench/serve_concurrency.py [--requests 16] [--new-tokens 32]
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
from report import bench_parser, print_comparison, print_speedup

ROOT = Path(__file__).resolve().parents[1]


def rounds(url: str, model: str, prompts: list[str], workers: int, args, extra: dict) -> tuple[list, list]:
    """tokens/s of each repeat and every request's latency, ``workers`` clients at a time."""
    client = openai.OpenAI(base_url=url, api_key="-", max_retries=0)

    def ask(prompt: str) -> tuple[int, float]:
        start = time.perf_counter()
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=args.new_tokens,
            temperature=0, extra_body=extra,
        )  # fmt: skip
        return reply.usage.completion_tokens, time.perf_counter() - start

    ask(prompts[0])  # warm-up
    rates, latencies = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            answers = list(pool.map(ask, prompts))
        rates.append(sum(n for n, _ in answers) / (time.perf_counter() - start))
        latencies += [s for _, s in answers]
    return rates, latencies


def vllm_server() -> tuple[subprocess.Popen, str, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "babeltune", "serve", "builtin:smollm2-135m", "--engine", "vllm", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    line = proc.stdout.readline()
    if " at http" not in line:
        raise SystemExit(f"vLLM server did not start: {line!r}")
    return proc, line.split(" at ")[1].strip(), time.perf_counter() - start


def main() -> None:
    parser = bench_parser(__doc__, repeats=2)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    from babeltune.data.loaders import builtin_test_prompts
    from babeltune.serve import load, make_server

    prompts = [p.prompt for p in builtin_test_prompts(["en", "es", "ru", "zh"])][: args.requests]
    served = load("builtin:smollm2-135m")
    served.model.generation_config.min_new_tokens = args.new_tokens  # equal work for every side
    server = make_server(served, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    rates: dict[str, list[float]] = {}
    latencies: dict[str, list[float]] = {}
    generations = {}
    for name, workers in (("one client at a time", 1), (f"{args.requests} clients at once", args.requests)):
        before = served.generations
        rates[name], latencies[name] = rounds(url, served.name, prompts, workers, args, {})
        generations[name] = (served.generations - before) // args.repeats
    server.shutdown()
    started = None
    if importlib.util.find_spec("vllm"):
        proc, vurl, started = vllm_server()
        try:
            name = f"vLLM server, {args.requests} clients"
            equal = {"min_tokens": args.new_tokens, "ignore_eos": True}
            rates[name], latencies[name] = rounds(
                vurl, "builtin:smollm2-135m", prompts, args.requests, args, equal
            )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(
        f"serving: embedded SmolLM2-135M, {len(prompts)} chat requests of {args.new_tokens} new tokens, "
        f"in-house generations per round: " + ", ".join(f"{k} {v}" for k, v in generations.items())
    )
    print_comparison(rates, "tokens/s", "concurrent clients over one at a time", 4)
    for name, seconds in latencies.items():
        q = statistics.quantiles(seconds, n=20)
        print(f"  {name:<28} latency p50 {statistics.median(seconds):6.2f} s  p95 {q[18]:6.2f} s")
    if started is not None:
        print_speedup(rates, f"vLLM server, {args.requests} clients", f"{args.requests} clients at once",
                      "vLLM's server over the in-house one, same clients")  # fmt: skip
        print(
            f"  vLLM server start-up (until /health answers) {started:.0f} s; the in-house one loads in seconds"
        )


if __name__ == "__main__":
    main()
