"""Prompt templates: one object builds the prompt for training and for generation, so they cannot drift.

The paper's own code indented its inference prompt differently from its training prompt; here the
generation prompt *is* the training prompt's prefix (a test checks it for every template).
"""

from __future__ import annotations

from collections.abc import Callable

from babeltune.registry import Registry

ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)

PromptFn = Callable[[object, str, str], str]  # (tokenizer, instruction, input) -> prompt text
TEMPLATES: Registry[PromptFn] = Registry("template")


@TEMPLATES.register("alpaca")
def alpaca(tokenizer: object, instruction: str, input: str = "") -> str:
    """The paper's English Alpaca template, used for every language.

    >>> alpaca(None, "Say hi.").endswith("### Instruction:\\nSay hi.\\n\\n### Response:\\n")
    True
    """
    if input:
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)


@TEMPLATES.register("chat")
def chat(tokenizer: object, instruction: str, input: str = "") -> str:
    """The tokenizer's own chat template, one user turn, ready for the assistant's answer."""
    content = f"{instruction}\n\n{input}" if input else instruction
    return tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )


def build_prompt(template: str, tokenizer: object, instruction: str, input: str = "") -> str:
    return TEMPLATES.get(template)(tokenizer, instruction, input)


def build_training_text(
    template: str, tokenizer: object, instruction: str, input: str, output: str
) -> tuple[str, str]:
    """(prompt, full text): the full text is the prompt, the answer and the end-of-sequence token."""
    prompt = build_prompt(template, tokenizer, instruction, input)
    return prompt, prompt + output + tokenizer.eos_token  # type: ignore[attr-defined]
