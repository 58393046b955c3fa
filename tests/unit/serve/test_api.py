"""The server in process: a burst of connections, requests batched together, each its own answer."""

import openai

from babeltune.config import GenerateArgs


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
