"""`babeltune serve` started for real, spoken to through the official openai client."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import openai
import pytest

from babeltune.config import GenerateArgs, LoraArgs, MixArgs, ModelArgs, TestArgs, TrainArgs
from babeltune.data import stage as data_stage
from babeltune.generate import GenerateJob
from babeltune.generate import run as generate
from babeltune.inference.target import Target
from babeltune.io import read_jsonl
from babeltune.mix import run as mix
from babeltune.models import load_tokenizer
from babeltune.templates import build_prompt
from babeltune.train.stage import TrainJob
from babeltune.train.stage import run as train

KEY = "sk-serve-test-key"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """A babeltune training folder: the tiny model plus a LoRA adapter."""
    root = tmp_path_factory.mktemp("serve")
    data_stage.run(data_stage.DataArgs(languages=["en"], max_examples_per_language=8), root)
    mix(MixArgs(regimes=["english-only"]), root / "examples.jsonl", ["en"], root)
    job = TrainJob(ModelArgs(name=tiny_model), "lora", LoraArgs(), TrainArgs(epochs=1))
    train(job, root / "en-only" / "mixture.jsonl", root / "train")
    return root / "train"


@pytest.fixture(scope="module")
def server(trained):
    env = dict(os.environ, BT_SERVE_KEY=KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "babeltune", "serve", str(trained), "--port", "0", "--name", "tiny",
         "--api-key-env", "BT_SERVE_KEY", "--max-tokens", "64", "--max-request-bytes", "20000"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert "serving 'tiny' (alpaca template) at http://127.0.0.1:" in line, line
    yield line.split(" at ")[1].strip()
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server, api_key=KEY, max_retries=0)


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


def test_a_burst_of_connections_waits_in_the_listen_queue_not_for_syn_retries(trained):
    """Nobody accepts yet: every one of 64 simultaneous connections must still complete its handshake
    (with a listen queue of 5 only 6 do, and the rest wait about a second for a retry)."""
    import socket

    from babeltune.serve import load, make_server

    server = make_server(load(str(trained)), port=0)  # bound and listening, not serving yet
    sockets = []
    try:
        for _ in range(64):
            sock = socket.socket()
            sock.settimeout(0.3)
            sockets.append(sock)
            sock.connect(server.server_address)
    finally:
        for sock in sockets:
            sock.close()
        server.socket.close()
    assert len(sockets) == 64


def test_requests_that_wait_together_are_answered_in_one_batch(trained):
    """Eight clients arrive while the model is busy: one generation answers all eight, each its own answer."""
    import threading

    from babeltune.serve import load

    served = load(str(trained))
    served.bf16 = False  # exact comparison with one-at-a-time answers
    gen = GenerateArgs(max_new_tokens=8, stop=[])
    prompts = [f"Question number {i}: say something." for i in range(8)]
    alone = [served.complete([p], gen)[0] for p in prompts]
    before = served.generations
    answers = [None] * 8

    def ask(i):
        answers[i] = served.complete([prompts[i]], gen)[0]

    with served.lock:  # busy: every request queues up
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        while len(served.waiting) < 8:
            threading.Event().wait(0.01)
    for t in threads:
        t.join(timeout=60)
    assert served.generations - before == 1
    assert answers == alone


def test_concurrent_http_clients_are_batched_and_each_get_their_own_answer(trained):
    """Through the real HTTP server: six clients at once share generations, and every reply is the text
    its own prompt gets when asked alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from babeltune.serve import load, make_server

    served = load(str(trained))
    served.bf16 = False  # exact comparison with one-at-a-time answers
    server = make_server(served, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="-", max_retries=0
    )
    prompts = [f"Tell me about the number {i}." for i in range(6)]

    def ask(prompt):
        reply = client.completions.create(model=served.name, prompt=prompt, max_tokens=6, temperature=0)
        return reply.choices[0].text

    try:
        alone = [ask(p) for p in prompts]
        before = served.generations
        with ThreadPoolExecutor(6) as pool:
            with served.lock:  # the model is busy until all six have arrived
                futures = [pool.submit(ask, p) for p in prompts]
                while len(served.waiting) < len(prompts):
                    threading.Event().wait(0.01)
            together = [f.result(timeout=60) for f in futures]
    finally:
        server.shutdown()
    assert together == alone
    assert served.generations - before == 1
