"""Shared fixtures: a tiny random-weight Llama model with a tokenizer trained here, offline, in seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _builtin_texts() -> list[str]:
    rows = [json.loads(line) for line in (REPO / "src/babeltune/resources/builtin/instructions.jsonl").open()]
    return [
        row[lang][field] for row in rows for lang in ("en", "es", "ru") for field in ("instruction", "output")
    ]


def tiny_tokenizer():
    """A 400-token byte-level BPE tokenizer trained here on the built-in data, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_builtin_texts(), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, hidden-16 LlamaForCausalLM with the tiny tokenizer, saved to a folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = tiny_tokenizer()
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory) -> str:
    """A 1+1-layer, d_model-16 MarianMTModel with the tiny tokenizer, saved to a folder."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    folder = tmp_path_factory.mktemp("tiny-marian")
    tok = tiny_tokenizer()
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = MarianConfig(
        vocab_size=len(tok),
        decoder_vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
        forced_eos_token_id=tok.eos_token_id,
    )
    MarianMTModel(config).save_pretrained(folder)
    return str(folder)


class ChatServer:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol.

    ``reply(body, attempt)`` returns the assistant text, or an int status code to fail with, or
    ("sleep", seconds, text) to answer late, or ("raw", bytes) to send a malformed body.
    """

    def __init__(self, reply):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self
        self.reply, self.calls, self.attempts, self.lock = reply, 0, {}, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                import time

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = body["messages"][-1]["content"]
                with server.lock:
                    server.calls += 1
                    server.attempts[key] = attempt = server.attempts.get(key, 0) + 1
                result = server.reply(body, attempt)
                if isinstance(result, tuple) and result[0] == "sleep":
                    time.sleep(result[1])
                    result = result[2]
                if isinstance(result, int):
                    return self._send(
                        result,
                        json.dumps({"error": {"message": "injected", "type": "server_error"}}).encode(),
                    )
                if isinstance(result, tuple) and result[0] == "raw":
                    return self._send(200, result[1])
                payload = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": result},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": len(key) // 4,
                        "completion_tokens": len(result) // 4,
                        "total_tokens": 0,
                    },
                }
                self._send(200, json.dumps(payload).encode())

            def _send(self, status, data):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def chat_server():
    servers = []

    def start(reply):
        servers.append(ChatServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
