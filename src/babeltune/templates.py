"""Prompt templates: one object builds the prompt for training and for generation, so they cannot drift.

The paper's own code indented its inference prompt differently from its training prompt; here the
generation prompt *is* the training prompt's prefix (a test checks it for every template).
"""

from __future__ import annotations

from typing import Literal

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


class Template:
    """A prompt format: the prompt of one instruction (training and generation share it), the prompt of a
    chat request's messages, which OpenAI endpoint reproduces the training prompt exactly, and the Jinja chat
    template a vLLM server needs for that (None: the model's own)."""

    endpoint: Literal["completions", "chat"] = "chat"
    stops: tuple[str, ...] = ()  # where an answer ends in this format (beyond the end-of-sequence token)

    def prompt(self, tokenizer: object, instruction: str, input: str = "") -> str:
        raise NotImplementedError

    def from_messages(self, tokenizer: object, messages: list[dict]) -> str:
        raise NotImplementedError

    def vllm_chat_template(self) -> str | None:
        return None


TEMPLATES: Registry[type[Template]] = Registry("template")


@TEMPLATES.register("alpaca")
class Alpaca(Template):
    """The paper's English Alpaca template, used for every language. It has no turns: a chat request is the
    prompt of its last user message, and endpoints reproduce it through /v1/completions with the exact text."""

    endpoint = "completions"
    stops = ("\n### ",)  # the next "### Instruction:" a tuned model runs on into

    def prompt(self, tokenizer: object, instruction: str, input: str = "") -> str:
        """
        >>> Alpaca().prompt(None, "Say hi.").endswith("### Instruction:\\nSay hi.\\n\\n### Response:\\n")
        True
        """
        if input:
            return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
        return ALPACA_NO_INPUT.format(instruction=instruction)

    def from_messages(self, tokenizer: object, messages: list[dict]) -> str:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise ValueError("the alpaca template needs a user message")
        return self.prompt(tokenizer, users[-1])  # exactly the training prompt

    def vllm_chat_template(self) -> str:
        """A Jinja chat template that renders the last user message as the alpaca training prompt."""
        head, tail = ALPACA_NO_INPUT.split("{instruction}")
        pick = "{%- set users = messages | selectattr('role', 'equalto', 'user') | list -%}"
        return f"{pick}{head}{{{{ users[-1]['content'] }}}}{tail}"


@TEMPLATES.register("chat")
class Chat(Template):
    """The tokenizer's own chat template, one user turn, ready for the assistant's answer."""

    def prompt(self, tokenizer: object, instruction: str, input: str = "") -> str:
        content = f"{instruction}\n\n{input}" if input else instruction
        return self.from_messages(tokenizer, [{"role": "user", "content": content}])

    def from_messages(self, tokenizer: object, messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            messages, tokenize=False, add_generation_prompt=True
        )


def template(name: str) -> Template:
    return TEMPLATES.get(name)()


def build_prompt(name: str, tokenizer: object, instruction: str, input: str = "") -> str:
    return template(name).prompt(tokenizer, instruction, input)


def build_training_text(
    name: str, tokenizer: object, instruction: str, input: str, output: str
) -> tuple[str, str]:
    """(prompt, full text): the full text is the prompt, the answer and the end-of-sequence token."""
    prompt = build_prompt(name, tokenizer, instruction, input)
    return prompt, prompt + output + tokenizer.eos_token  # type: ignore[attr-defined]


def chat_text(tokenizer, messages: list[dict]) -> str:
    """A conversation as the model's chat template renders it, ready for the reply (a model without a chat
    template gets the messages' text in paragraphs): how the local judge and the causal translator ask."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"
