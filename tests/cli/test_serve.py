"""`babeltune serve` started for real, spoken to through the official openai client."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from babeltune import tiny
from babeltune.config import GenerateArgs, ModelArgs, TestArgs
from babeltune.data import stage as data_stage
from babeltune.generate import GenerateJob
from babeltune.generate import run as generate
from babeltune.inference.target import Target
from babeltune.io import read_jsonl
from babeltune.models import load_tokenizer
from babeltune.templates import build_prompt
from helpers.serve import KEY

PROBE_KEY = "sk-probe-key-0123456789"


def start(model: str, *extra: str):
    env = dict(os.environ, BT_PROBE_KEY=PROBE_KEY)
    proc = subprocess.Popen([sys.executable, "-m", "babeltune", "serve", model, "--port", "0", "--name", "m",
                             "--api-key-env", "BT_PROBE_KEY", *extra], stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    line = proc.stdout.readline()
    assert " at http://127.0.0.1:" in line, line
    return proc, int(line.rsplit(":", 1)[1].split("/")[0])


@contextlib.contextmanager
def serving(model: str, *extra: str):
    """The port of a `babeltune serve` process for the block, stopped after it."""
    proc, port = start(model, *extra)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def port(tiny_model):
    with serving(tiny_model, "--max-tokens", "64", "--max-request-bytes", "20000") as port:
        yield port


def exchange(
    port: int, data: bytes, sock: socket.socket | None = None, timeout: float = 30
) -> tuple[int, str]:
    """Send raw bytes, read one HTTP response: (status, body)."""
    own = sock is None
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
        header, _, body = head.partition(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1]) if header.startswith(b"HTTP/") else 0
        length = next((int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")), None)  # fmt: skip
        while length is not None and len(body) < length:
            body += sock.recv(65536)
        return status, body.decode("utf-8", "replace")
    finally:
        if own:
            sock.close()


def post(path: str, body: bytes | str, key: str = PROBE_KEY, extra: str = "") -> bytes:
    body = body.encode() if isinstance(body, str) else body
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body  # fmt: skip


def chunked(parts: list[str]) -> bytes:
    head = f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROBE_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    return (head + "".join(f"{len(p.encode()):x}\r\n{p}\r\n" for p in parts) + "0\r\n\r\n").encode()


GOOD = post(
    "/v1/completions", json.dumps({"model": "m", "prompt": "Hello", "max_tokens": 3, "temperature": 0})
)


# (name, request bytes, expected status, reaches the app: then the error must be JSON)
PROBES = [
    ("seed is a string", post("/v1/completions", '{"prompt": "x", "seed": "abc"}'), 400, True),
    ("seed 1e400", post("/v1/completions", '{"prompt": "x", "seed": 1e400}'), 400, True),
    ("seed 2**70", post("/v1/completions", '{"prompt": "x", "seed": 1180591620717411303424}'), 400, True),
    ("empty prompt", post("/v1/completions", '{"prompt": ""}'), 400, True),
    ("100,000 nested lists", post("/v1/completions", "[" * 100_000 + "]" * 100_000), 413, True),
    ("10,000 nested lists", post("/v1/completions", "[" * 9_000 + "]" * 9_000), 400, True),
    ("a lone surrogate", post("/v1/completions", '{"prompt": "bad \\ud800 text"}'), 400, True),
    ("not JSON", post("/v1/completions", "{not json"), 400, True),
    ("not an object", post("/v1/completions", "[1, 2]"), 400, True),
    ("temperature 7", post("/v1/completions", '{"prompt": "x", "temperature": 7}'), 400, True),
    ("temperature NaN", post("/v1/completions", '{"prompt": "x", "temperature": NaN}'), 400, True),
    ("max_tokens over the limit", post("/v1/completions", '{"prompt": "x", "max_tokens": 5000}'), 400, True),
    ("max_tokens true", post("/v1/completions", '{"prompt": "x", "max_tokens": true}'), 400, True),
    ("100 prompts", post("/v1/completions", json.dumps({"prompt": ["x"] * 100})), 400, True),
    ("ten stop strings", post("/v1/completions", json.dumps({"prompt": "x", "stop": ["a"] * 10})), 400, True),
    ("stream of two prompts", post("/v1/completions", '{"prompt": ["a", "b"], "stream": true}'), 400, True),
    ("n = 2", post("/v1/completions", '{"prompt": "x", "n": 2}'), 400, True),
    ("no messages", post("/v1/chat/completions", '{"messages": []}'), 400, True),
    ("a message without content", post("/v1/chat/completions", '{"messages": [{"role": "user"}]}'), 400, True),
    ("a bad role", post("/v1/chat/completions", '{"messages": [{"role": "x", "content": "y"}]}'), 400, True),
    ("unknown model", post("/v1/completions", '{"model": "gpt-4", "prompt": "x"}'), 404, True),
    ("wrong key", post("/v1/completions", '{"prompt": "x"}', key="wrong"), 401, True),
    ("body over the limit", post("/v1/completions", json.dumps({"prompt": "x" * 30_000})), 413, True),
    ("Content-Length says more than the limit", post("/v1/completions", "{}").replace(b"Length: 2", b"Length: 999999"), 413, True),
    ("unknown route", post("/v1/nothing", "{}"), 404, True),
    ("GET unknown route", b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n", 404, True),
    *((f"{m} on a route", f"{m} /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(), 405, True)
      for m in ("PUT", "DELETE", "OPTIONS", "PATCH")),
    ("a chunked body", chunked(['{"prompt": "Hi", ', '"max_tokens": 2}']), 200, True),
    ("a chunked body over the limit", chunked(['{"prompt": "', "x" * 15_000, "x" * 15_000, '"}']), 413, True),
    ("max_tokens left out", post("/v1/completions", '{"prompt": "Hi", "temperature": 0}'), 200, True),
    ("Content-Length: abc", post("/v1/completions", "{}").replace(b"Length: 2", b"Length: abc"), 400, False),
    ("a 100 KB header", b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, False),
    ("not HTTP at all", b"\x00\x01\x02 hello\r\n\r\n", 400, False),
]  # fmt: skip


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_chat_uses_the_training_template(client, tiny_model):
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Name three fruits."}],
        max_tokens=8,
        temperature=0,
    )
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason in ("stop", "length")
    assert isinstance(reply.choices[0].message.content, str)
    # The prompt the server built is exactly the training prompt (same token count).
    expected = build_prompt("alpaca", None, "Name three fruits.")
    assert reply.usage.prompt_tokens == len(
        load_tokenizer(tiny_model)(expected, add_special_tokens=False)["input_ids"]
    )
    assert 0 < reply.usage.completion_tokens <= 8


def test_streaming_gives_the_same_text_as_a_single_reply(client):
    kwargs = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 12,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed.strip() == whole
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason in (
        "stop",
        "length",
    )


def test_completions_batch_and_stop_strings(client):
    reply = client.completions.create(
        model="tiny", prompt=["One", "Two words"], max_tokens=16, temperature=0, stop=["e"]
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert all("e" not in c.text for c in reply.choices)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt="One", max_tokens=16, temperature=0, stop=["e"], stream=True))  # fmt: skip
    assert streamed == reply.choices[0].text


def test_errors_are_clear_json(server, client):
    with pytest.raises(openai.AuthenticationError, match="invalid or missing API key"):
        openai.OpenAI(base_url=server, api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError, match="max_tokens must be an integer from 1 to 64"):
        client.completions.create(model="tiny", prompt="x", max_tokens=5000)
    with pytest.raises(openai.BadRequestError, match="temperature must be a number from 0 to 2"):
        client.completions.create(model="tiny", prompt="x", max_tokens=4, temperature=7)
    with pytest.raises(openai.NotFoundError, match="model 'gpt-4' not found"):
        client.completions.create(model="gpt-4", prompt="x", max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="messages must be a non-empty list"):
        client.chat.completions.create(model="tiny", messages=[], max_tokens=4)

    def raw(body: bytes):
        req = urllib.request.Request(f"{server}/completions", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        return err.value.code, json.loads(err.value.read())["error"]["message"]

    assert raw(json.dumps({"prompt": "x" * 30000}).encode()) == (413, "request body over 20000 bytes")
    status, message = raw(b"{not json")
    assert status == 400 and message.startswith("request body is not valid JSON")


def test_generation_backend_openai_talks_to_babeltune_serve(tmp_path, server, monkeypatch):
    monkeypatch.setenv("BT_SERVE_KEY", KEY)
    prompts = data_stage.run_tests(TestArgs(languages=["en", "de"], max_prompts=2), tmp_path)
    gen = GenerateArgs(
        backend="openai", base_url=server, api_key_env="BT_SERVE_KEY", model="tiny", max_new_tokens=6
    )
    job = GenerateJob(gen, "tiny/lora/en-only")
    rows = read_jsonl(generate(job, Target.base(ModelArgs()), prompts, tmp_path / "gen"))
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in read_jsonl(prompts))
    assert all(r["prompt_text"] == build_prompt("alpaca", None, r["prompt"]) for r in rows)
    assert all(KEY not in json.dumps(r) for r in rows)


def test_a_greedy_served_answer_equals_the_evaluated_one(tmp_path, trained, client):
    """serve reproduces what generate stored: the same loader, precision and decoding path, and the training
    template's stop strings applied unless the request names its own (served without them, a tuned adapter
    ran on into '### Response:' and 2 of 4 answers differed)."""
    prompts = data_stage.run_tests(TestArgs(languages=["en", "de"], max_prompts=3), tmp_path)
    job = GenerateJob(GenerateArgs(backend="hf", max_new_tokens=16, batch_size=1), "tiny/lora/en-only")
    rows = read_jsonl(generate(job, Target.of(trained / "adapter"), prompts, tmp_path / "gen"))
    assert len(rows) == 6
    for r in rows:
        served = client.completions.create(
            model="tiny", prompt=r["prompt_text"], max_tokens=16, temperature=0
        )
        assert served.choices[0].text.strip() == r["response"], r["id"]
        assert "### " not in served.choices[0].text
    raw = client.completions.create(model="tiny", prompt=rows[0]["prompt_text"], max_tokens=16, temperature=0,
                                    stop=[])  # fmt: skip
    assert raw.choices[0].text == rows[0]["raw"]  # stop=[]: the request's own choice, no stop at all
    from babeltune.serve.api import CompletionRequest, Limits, decoding

    assert decoding(CompletionRequest(prompt="x"), Limits(), ["\n### "]).stop == ["\n### "]  # the template's
    assert decoding(CompletionRequest(prompt="x", stop=["END"]), Limits(), ["\n### "]).stop == ["END"]


def test_judge_through_babeltune_serve(tmp_path, server, monkeypatch):
    """The openai judge backend against a real babeltune server: a tiny model rarely rates, and every
    unparsable judgement is kept as None with its raw text and counted."""
    from babeltune.config import EvaluateArgs, JudgeArgs
    from babeltune.evaluate import run as evaluate
    from babeltune.io import read_json, write_jsonl

    monkeypatch.setenv("BT_SERVE_KEY", KEY)
    write_jsonl(tmp_path / "responses.jsonl", [
        {"id": f"q{i}:en", "source_id": f"q{i}", "lang": "en", "run": "r", "prompt": f"Question {i}?",
         "response": "An answer in English, long enough to identify.", "reference": None}
        for i in range(3)
    ])  # fmt: skip
    judge = JudgeArgs(
        backend="openai", base_url=server, model="tiny", api_key_env="BT_SERVE_KEY", max_new_tokens=8
    )
    evaluate(
        EvaluateArgs(judge=judge),
        tmp_path / "responses.jsonl",
        tmp_path / "eval",
        tmp_path / "judgements",
    )
    scores = read_jsonl(tmp_path / "eval" / "scores.jsonl")
    assert all(r["judge_raw"] is not None for r in scores)
    assert all(r["judge_score"] in (None, 1, 2, 3) for r in scores)
    report = read_json(tmp_path / "eval" / "evaluation.json")["judge"]
    assert report["judged"] == 3 and report["unparsable"] == sum(r["judge_score"] is None for r in scores)


@pytest.mark.parametrize(("name", "data", "status", "app"), PROBES, ids=[p[0] for p in PROBES])
def test_every_probe_gets_an_answer_and_the_next_request_too(port, name, data, status, app):
    got, body = exchange(port, data)
    if app:
        assert got == status, (got, body[:300])
        if status >= 400:
            error = json.loads(body)["error"]
            assert error["message"] and error["code"] == status
    else:  # framing the app never sees: the HTTP library answers it, with a client error
        assert 400 <= got < 500 or got == 0, (got, body[:300])
    assert exchange(port, GOOD)[0] == 200


def test_a_refused_request_leaves_the_connection_clean(port):
    """Keep-alive after a 401 or 404 whose body the server never read: the next request is parsed as a
    request, not from the left-over body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        big = json.dumps({"prompt": "POST /v1/x HTTP/1.1 " * 50})
        assert exchange(port, post("/v1/completions", big, key="wrong"), sock)[0] == 401
        assert exchange(port, GOOD, sock)[0] in (200, 0)  # answered, or the server closed to stay safe
    finally:
        sock.close()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=PROBE_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="x" * 5000, max_tokens=2)
    assert client.completions.create(model="m", prompt="Hi", max_tokens=2).choices[0].text is not None
    wrong = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.completions.create(model="m", prompt="x" * 5000, max_tokens=2)


def test_a_poison_prompt_fails_alone_among_concurrent_requests(port):
    results = [None] * 8

    def ask(i: int) -> None:
        prompt = "poison \\ud800" if i == 3 else f"Question {i}"
        body = '{"prompt": "' + prompt + '", "max_tokens": 3}'
        results[i] = exchange(port, post("/v1/completions", body))[0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [200, 200, 200, 400, 200, 200, 200, 200]


def test_a_client_that_cuts_a_stream_frees_the_model(tmp_path):
    model = tiny.llama(tmp_path / "slow", hidden=512, layers=4, heads=8)  # ~20 s for 4,000 tokens here
    with serving(model, "--max-tokens", "4000") as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        body = json.dumps({"prompt": "Go on forever", "max_tokens": 4000, "stream": True, "temperature": 0})
        sock.sendall(post("/v1/completions", body))
        received = b""
        while b"data: " not in received:  # streaming has begun
            received += sock.recv(65536)
        sock.close()  # the client hangs up
        start_time = time.perf_counter()
        assert exchange(port, GOOD)[0] == 200
        assert time.perf_counter() - start_time < 2.0


def test_a_failed_stream_ends_with_an_error_and_a_long_prompt_is_refused(tiny_model):
    """Issue 28, item 5, through the official client: a generation that fails mid-stream (a temperature so
    small that sampling overflows) ends the stream with an error event instead of hanging it; a prompt over
    --max-prompt-tokens is a 400 that names the limit."""
    with serving(tiny_model, "--max-tokens", "64", "--max-prompt-tokens", "50") as port:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=PROBE_KEY, max_retries=0, timeout=30
        )
        start_time = time.perf_counter()
        with pytest.raises(openai.APIError, match="generation failed"):
            for _ in client.completions.create(model="m", prompt="Hello", max_tokens=8, stream=True,
                                               temperature=1e-300):  # fmt: skip
                pass
        assert time.perf_counter() - start_time < 20
        with pytest.raises(
            openai.BadRequestError, match="over this server's limit of 50 \\(--max-prompt-tokens\\)"
        ):
            client.completions.create(model="m", prompt="word " * 400, max_tokens=3)
        with pytest.raises(openai.BadRequestError, match="--max-prompt-tokens"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 400}])
        assert exchange(port, GOOD)[0] == 200


def test_a_client_that_hangs_up_on_a_plain_request_frees_the_model(tmp_path):
    """Issue 28, item 5: not streamed, a 4,000-token answer the client stopped waiting for is stopped at its
    next token; the next request is answered at once."""
    model = tiny.llama(tmp_path / "slow", hidden=512, layers=4, heads=8)  # ~20 s for 4,000 tokens here
    with serving(model, "--max-tokens", "4000") as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        body = json.dumps({"prompt": "Go on forever", "max_tokens": 4000, "temperature": 0, "stop": []})
        sock.sendall(post("/v1/completions", body))
        time.sleep(1.5)  # generating by now
        sock.close()  # the client hangs up
        start_time = time.perf_counter()
        assert exchange(port, GOOD)[0] == 200
        assert time.perf_counter() - start_time < 3.0
