"""Random-weight models built from configs, for tests and benchmarks: offline, seeded, in seconds.

A byte-level BPE tokenizer is trained on the built-in data, so the models see real multilingual text.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tokenizer(vocab_size: int = 400, languages: tuple[str, ...] = ("en", "es", "ru"), pad_last: bool = False):
    """A BPE tokenizer with ``<eos>``/``<pad>`` and a chat template, trained on built-in texts; with
    ``pad_last`` it is laid out like OPUS-MT's Marian vocabularies: an ``<unk>``, and ``<pad>`` last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from babeltune.data.loaders import builtin_examples

    texts = [t for e in builtin_examples(list(languages)) for t in (e.instruction, e.output)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<eos>", "<unk>"] if pad_last else ["<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    if pad_last:
        bpe.add_special_tokens(["<pad>"])
    unk = {"unk_token": "<unk>"} if pad_last else {}
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>", **unk)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _save(folder: Path, tok, build, **config) -> str:
    import torch

    tok.save_pretrained(folder)
    torch.manual_seed(0)
    build(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **config
    ).save_pretrained(folder)
    return str(folder)


def causal_lm(
    folder: Path,
    model_type: str = "llama",
    hidden: int = 16,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 400,
) -> str:
    """A causal LM of any transformers family (llama, qwen2, gemma, gpt_neox, bloom, ...) with its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    def build(**config):
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **config))

    return _save(
        folder,
        tokenizer(vocab_size),
        build,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=512,
    )


def llama(folder: Path, hidden: int = 16, layers: int = 2, heads: int = 2, vocab_size: int = 400) -> str:
    """A LlamaForCausalLM (hidden 16, 2 layers by default) saved with its tokenizer."""
    return causal_lm(folder, "llama", hidden, layers, heads, vocab_size)


def marian(folder: Path, d_model: int = 16, layers: int = 1, heads: int = 2, vocab_size: int = 400) -> str:
    """A MarianMTModel (OPUS-MT's architecture) saved with its tokenizer."""
    from transformers import MarianConfig, MarianMTModel

    tok = tokenizer(vocab_size, ("en", "de", "fr", "es"), pad_last=True)
    return _save(
        folder,
        tok,
        lambda **config: MarianMTModel(MarianConfig(**config)),
        decoder_vocab_size=len(tok),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        max_position_embeddings=512,
        decoder_start_token_id=tok.pad_token_id,
        forced_eos_token_id=tok.eos_token_id,
    )
