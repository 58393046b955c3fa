"""Benchmark: the `hf` translation backend's length-sorted batching against one text at a time, and the
`ctranslate2` backend (int8) against `hf`, both batched.

Same model, same inputs, same decoding, measured in one run. The model is a random-weight MarianMT of
OPUS-MT's shape (6+6 layers, d_model 512) built from a config, so it runs offline; a random model's
outputs are junk, so decoding is pinned to a fixed number of new tokens to make both sides do equal work.

    python bench/translate_batching.py [--texts 48] [--new-tokens 32] [--batch-size 16]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from report import bench_parser, print_comparison, print_speedup

from babeltune import tiny


class PinnedLength:
    """A ctranslate2.Translator that decodes exactly ``n`` tokens, like the hf side's ``min_new_tokens``."""

    def __init__(self, translator, n: int):
        self.translator, self.n = translator, n

    def translate_batch(self, sources, **options):
        return self.translator.translate_batch(sources, **options | {"min_decoding_length": self.n})


def timed(translator, texts: list[str], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        translator.translate(texts, "en", "de", lambda pairs: None, lambda text, reason: None)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument("--texts", type=int, default=48, help="English segments to translate")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per segment")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from babeltune.config import TranslateArgs
    from babeltune.data.loaders import builtin_examples
    from babeltune.translate.backends import CTranslate2Translator, HFTranslator

    english = builtin_examples(["en"])
    texts = [t for e in english for t in (e.instruction, e.output)][: args.texts]
    with tempfile.TemporaryDirectory() as folder:
        tiny.marian(Path(folder), d_model=512, layers=6, heads=8, vocab_size=8000)  # OPUS-MT's shape
        results = {}
        for name, batch in (("one at a time", 1), (f"sorted batches of {args.batch_size}", args.batch_size)):
            cfg = TranslateArgs(model=folder, batch_size=batch, max_length=args.new_tokens)
            translator = HFTranslator(cfg)
            model = translator._load(folder)[1]
            model.generation_config.min_new_tokens = args.new_tokens  # equal work for both sides
            timed(translator, texts[:2], 1)  # warm-up
            results[name] = timed(translator, texts, args.repeats)
        batched = f"sorted batches of {args.batch_size}"
        ct2 = "ctranslate2 int8, batched"
        os.environ["BABELTUNE_CACHE"] = folder  # the converted copy of this throwaway model goes with it
        cfg = TranslateArgs(
            model=folder, batch_size=args.batch_size, max_length=args.new_tokens, compute_type="int8"
        )
        translator = CTranslate2Translator(cfg)
        tokenizer, model, model_type = translator._model(folder)
        translator._loaded[folder] = tokenizer, PinnedLength(model, args.new_tokens), model_type
        timed(translator, texts[:2], 1)  # warm-up
        results[ct2] = timed(translator, texts, args.repeats)

    print(
        f"translation: {len(texts)} segments, {args.new_tokens} new tokens each, {torch.get_num_threads()} threads"
    )
    rates = {name: [len(texts) / s for s in secs] for name, secs in results.items()}
    print_comparison(rates, "segments/s", "sorted batching over one at a time", 3)
    print_speedup(rates, ct2, batched, "ctranslate2 int8 over hf, both batched")


if __name__ == "__main__":
    main()
