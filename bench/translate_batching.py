"""Benchmark: the `hf` translation backend's length-sorted batching against one text at a time.

Same model, same inputs, same decoding, measured in one run. The model is a random-weight MarianMT of
OPUS-MT's shape (6+6 layers, d_model 512) built from a config, so it runs offline; a random model's
outputs are junk, so decoding is pinned to a fixed number of new tokens to make both sides do equal work.

    python bench/translate_batching.py [--texts 48] [--new-tokens 32] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def build_model(folder: str, vocab: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    from babeltune.data.loaders import builtin_examples

    texts = [e.output for e in builtin_examples(["en", "de", "fr", "es"])]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<eos>", "<pad>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = MarianConfig(
        vocab_size=len(tok),
        decoder_vocab_size=len(tok),
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    MarianMTModel(config).save_pretrained(folder)


def timed(translator, texts: list[str], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        translator.translate(texts, "en", "de", lambda pairs: None, lambda text, reason: None)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=48, help="English segments to translate")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per segment")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from babeltune.config import TranslateArgs
    from babeltune.data.loaders import builtin_examples
    from babeltune.translate.backends import HFTranslator

    english = builtin_examples(["en"])
    texts = [t for e in english for t in (e.instruction, e.output)][: args.texts]
    with tempfile.TemporaryDirectory() as folder:
        build_model(folder, vocab=8000)
        results = {}
        for name, batch in (("one at a time", 1), (f"sorted batches of {args.batch_size}", args.batch_size)):
            cfg = TranslateArgs(model=folder, batch_size=batch, max_length=args.new_tokens)
            translator = HFTranslator(cfg)
            model = translator._load(folder)[1]
            model.generation_config.min_new_tokens = args.new_tokens  # equal work for both sides
            timed(translator, texts[:2], 1)  # warm-up
            results[name] = timed(translator, texts, args.repeats)

    print(
        f"translation: {len(texts)} segments, {args.new_tokens} new tokens each, {torch.get_num_threads()} threads"
    )
    for name, secs in results.items():
        rate = [len(texts) / s for s in secs]
        print(
            f"  {name:<24} segments/s min {min(rate):6.2f}  median {statistics.median(rate):6.2f}  max {max(rate):6.2f}"
        )
    base, fast = (statistics.median(s) for s in results.values())
    print(f"  speed-up of sorted batching over one at a time: {base / fast:.1f}x (target: at least 3x)")


if __name__ == "__main__":
    main()
