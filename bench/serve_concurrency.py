"""Benchmark: `babeltune serve` answering clients one after another against 16 clients at once.

The embedded model behind a real HTTP server on 127.0.0.1, the official openai client, the same prompts;
answers pinned to the same number of new tokens so both sides do equal work. Concurrent requests that
arrive while the model is busy are answered together in one batch.

    python bench/serve_concurrency.py [--requests 16] [--new-tokens 32]
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
from report import bench_parser, print_comparison


def main() -> None:
    parser = bench_parser(__doc__, repeats=2)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    from babeltune.data.loaders import builtin_test_prompts
    from babeltune.serve import load, make_server

    served = load("builtin:smollm2-135m")
    served.model.generation_config.min_new_tokens = args.new_tokens  # equal work for both sides
    server = make_server(served, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="-", max_retries=0
    )
    prompts = [p.prompt for p in builtin_test_prompts(["en", "es", "ru", "zh"])][: args.requests]

    def ask(prompt: str) -> int:
        reply = client.chat.completions.create(
            model=served.name, messages=[{"role": "user", "content": prompt}], max_tokens=args.new_tokens,
            temperature=0,
        )  # fmt: skip
        return reply.usage.completion_tokens

    ask(prompts[0])  # warm-up
    rates: dict[str, list[float]] = {"one client at a time": [], f"{args.requests} clients at once": []}
    generations = {}
    for _ in range(args.repeats):
        for name, workers in zip(rates, (1, args.requests), strict=True):
            before, start = served.generations, time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                tokens = sum(pool.map(ask, prompts))
            rates[name].append(tokens / (time.perf_counter() - start))
            generations[name] = served.generations - before
    server.shutdown()
    print(
        f"serving: embedded SmolLM2-135M, {len(prompts)} chat requests of {args.new_tokens} new tokens, "
        f"generations per round: " + ", ".join(f"{k} {v}" for k, v in generations.items())
    )
    print_comparison(rates, "tokens/s", "concurrent clients over one at a time", 4)


if __name__ == "__main__":
    main()
