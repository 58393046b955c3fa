"""Prompt templates: the generation prompt is the training prompt's prefix; the Alpaca template is the paper's."""

import pytest

from babeltune.models import load_tokenizer
from babeltune.templates import TEMPLATES, build_prompt, build_training_text


@pytest.mark.parametrize("template", TEMPLATES.names())
@pytest.mark.parametrize("input_text", ["", "Some context to use."])
def test_generation_prompt_is_the_training_prompt_prefix(tiny_model, template, input_text):
    tok = load_tokenizer(tiny_model)
    prompt, full = build_training_text(template, tok, "Name three fruits.", input_text, "Apple, pear, plum.")
    assert build_prompt(template, tok, "Name three fruits.", input_text) == prompt
    assert full == prompt + "Apple, pear, plum." + tok.eos_token
    # And in tokens: the prompt's tokens are exactly the first tokens of the training sequence.
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    f_ids = tok(full, add_special_tokens=False)["input_ids"]
    assert f_ids[: len(p_ids)] == p_ids


def test_alpaca_template_is_the_papers():
    text = build_prompt("alpaca", None, "Translate.", "Hallo")
    assert text == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nTranslate.\n\n### Input:\nHallo\n\n### Response:\n"
    )
