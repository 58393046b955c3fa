"""Shared fixtures: a tiny random-weight Llama model with a tokenizer trained here, offline, in seconds."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from babeltune import tiny

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# Fixtures that tests in unit/ and cli/ share: found by name, as if they were defined here.
pytest_plugins = ["helpers.mix", "helpers.serve", "helpers.train", "helpers.translate"]
PROCESS = re.compile(r"\bbabeltune\(|\bsubprocess\.|\bPopen\(|\brun_quick\(")  # what starts another process


def _starts_processes(item: pytest.Item) -> bool:
    """Whether a test, a fixture it uses or a helper of its module they call starts another process."""
    helpers = {name: fn for name, fn in vars(item.module).items()
               if inspect.isfunction(fn) and fn.__module__ == item.module.__name__}  # fmt: skip
    defs = item._fixtureinfo.name2fixturedefs
    todo, seen = [item.function] + [defs[n][-1].func for n in item.fixturenames if n in defs], set()
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            continue
        if PROCESS.search(source):
            return True
        todo += [h for name, h in helpers.items() if re.search(rf"\b{name}\(", source)]
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/cli/ and tests/e2e/ are marked by their folder; any other test that starts
    ``babeltune`` (or any process) is marked ``cli`` too. ``make test-fast`` leaves both out."""
    for item in items:
        folder = (
            item.path.relative_to(REPO / "tests").parts[0] if item.path.is_relative_to(REPO / "tests") else ""
        )
        if folder == "e2e":
            item.add_marker(pytest.mark.e2e)
        if folder in ("cli", "e2e") or (isinstance(item, pytest.Function) and _starts_processes(item)):
            item.add_marker(pytest.mark.cli)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, hidden-16 LlamaForCausalLM with a tokenizer trained on the built-in data."""
    return tiny.llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory) -> str:
    """A 1+1-layer, d_model-16 MarianMTModel with a tokenizer trained on the built-in data."""
    return tiny.marian(tmp_path_factory.mktemp("tiny-marian"))


class ChatServer:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol.

    ``reply(body, attempt)`` returns the assistant text, or an int status code to fail with, or
    ("error", status, message) to fail with that message, ("sleep", seconds, text) to answer late, or
    ("raw", bytes) to send a malformed body.
    """

    def __init__(self, reply):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class HTTPServer(ThreadingHTTPServer):
            request_queue_size = 128  # a burst of concurrent clients waits here, not for SYN retries
            daemon_threads = True

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
                    result = ("error", result, "injected")
                if isinstance(result, tuple) and result[0] == "error":
                    body = {"error": {"message": result[2], "type": "server_error"}}
                    return self._send(result[1], json.dumps(body).encode())
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

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
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


def babeltune(
    *args: str, env: dict | None = None, timeout: float = 600, **popen
) -> subprocess.CompletedProcess:
    """The `babeltune` command in a real process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "babeltune", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), **popen,
    )  # fmt: skip


def tiny_config(path: Path, model: str, run_dir: Path, **groups: str) -> Path:
    """An experiment YAML on the tiny model: English + Spanish, two mixtures, two test languages and an
    unseen one; ``groups`` replace whole groups (YAML flow text, e.g. translate="{enabled: true}")."""
    sections = {
        "data": "{languages: [en, es], max_examples_per_language: 8}",
        "test": '{languages: [en, es, "no"], max_prompts: 2}',
        "mix": "{regimes: [english-only, multilingual-downsampled]}",
        "models": f'[{{name: "{model}"}}]',
        "train": "{epochs: 1, batch_size: 4, grad_accum: 1, learning_rate: 1.0e-2}",
        "generate": "{max_new_tokens: 4}",
        "evaluate": f'{{judge: {{backend: local, model: "{model}", max_per_language: 1}}}}',
    } | groups
    body = "".join(f"{name}: {value}\n" for name, value in sections.items())
    path.write_text(f"# babeltune run {path.name}\nname: tiny\noutput_dir: {run_dir}\n{body}")
    return path


def run_quick(out: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`babeltune run configs/quick.yaml` into ``out``, timed."""
    import time

    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "babeltune", "run", "configs/quick.yaml", f"--output_dir={out}"],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, time.perf_counter() - start


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """One uninterrupted run of the quick config, shared by the tests that read it (never write to it)."""
    out = tmp_path_factory.mktemp("quick")
    return out, *run_quick(out)
