"""Benchmark: the `hf` generation backend's length-sorted batches against one prompt at a time.

Same embedded model (SmolLM2-135M), same prompts (built-in test prompts in several languages, the
training template), same decoding, in one run. Every answer is pinned to the same number of new tokens
so both sides do equal work.

    python bench/generate_batching.py [--prompts 32] [--new-tokens 48] [--batch-size 16]
"""

from __future__ import annotations

import time

import torch
from report import bench_parser, peak_rss_gb, print_comparison


def main() -> None:
    parser = bench_parser(__doc__, repeats=2)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from babeltune.config import GenerateArgs
    from babeltune.data.loaders import builtin_test_prompts
    from babeltune.generate import generate_batch, length_sorted_batches, use_bf16
    from babeltune.models import load_model, load_tokenizer
    from babeltune.templates import build_prompt

    tokenizer = load_tokenizer("builtin:smollm2-135m", padding_side="left")
    model = load_model("builtin:smollm2-135m").eval()
    model.generation_config.min_new_tokens = args.new_tokens  # equal work for both sides
    gen = GenerateArgs(max_new_tokens=args.new_tokens, stop=[])
    bf16 = use_bf16(gen, "float32")
    prompts = builtin_test_prompts(["en", "es", "ru", "zh"])[: args.prompts]
    texts = [build_prompt("alpaca", tokenizer, p.prompt) for p in prompts]

    def one_at_a_time() -> int:
        return sum(n for t in texts for _, n in generate_batch(model, tokenizer, [t], gen, bf16))

    def batched() -> int:
        return sum(
            n
            for b in length_sorted_batches(texts, len, args.batch_size)
            for _, n in generate_batch(model, tokenizer, b, gen, bf16)
        )

    generate_batch(model, tokenizer, texts[:2], gen, bf16)  # warm-up
    results = {}
    for name, fn in (("one at a time", one_at_a_time), (f"sorted batches of {args.batch_size}", batched)):
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens = fn()
            rates.append(tokens / (time.perf_counter() - start))
        results[name] = rates
    print(
        f"generation: embedded SmolLM2-135M, {len(texts)} prompts, {args.new_tokens} new tokens each, "
        f"{'bf16 autocast' if bf16 else 'fp32'}, {torch.get_num_threads()} threads"
    )
    print_comparison(results, "tokens/s", "batching over one at a time", 4)
    print(f"  peak resident memory of this process (model, tokenizer, generation): {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
