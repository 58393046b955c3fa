"""Benchmarks for evaluation: language-ID rate and accuracy, and concurrent against sequential judging.

Language ID: 10,000 responses (built-in texts in 12 languages, cycled) per backend, timed after loading (3 runs);
accuracy on every built-in test prompt and reference answer. Judging: the `openai` judge backend against
a local server that answers after a fixed delay, with 1 request in flight and with 16, in one run.

    python bench/langid_and_judge.py [--n 10000] [--delay 0.2] [--judgements 48]
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from report import bench_parser, print_comparison

from babeltune.config import JudgeArgs, LangIdArgs
from babeltune.data.loaders import builtin_test_prompts
from babeltune.evaluate.judge import BACKENDS, JudgeItem, load_prompt
from babeltune.langid import detect
from babeltune.retry import Usage

LANGS = ["en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh", "bn", "no", "hi"]


def langid_bench(n: int, repeats: int) -> None:
    prompts = builtin_test_prompts(LANGS)
    labelled = [(p.lang, t) for p in prompts for t in (p.prompt, p.reference)]
    texts = [labelled[i % len(labelled)][1] for i in range(n)]
    print(
        f"language ID: {n} responses, accuracy on {len(labelled)} built-in prompts and references (12 languages)"
    )
    for backend in ("fasttext", "py3langid"):
        cfg = LangIdArgs(backend=backend, min_letters=1)
        detect(texts[:10], cfg)  # load the model outside the timing
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            detect(texts, cfg)
            seconds.append(time.perf_counter() - start)
        found = detect([t for _, t in labelled], cfg)
        right = sum(d.lang == lang for (lang, _), d in zip(labelled, found, strict=True))
        print(
            f"  {backend:<10} responses/s min {n / max(seconds):7.0f}  median {n / statistics.median(seconds):7.0f}  "
            f"max {n / min(seconds):7.0f}  accuracy {right / len(labelled):.1%}"
        )


def judge_bench(delay: float, count: int, repeats: int) -> None:
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "j", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Fine. Rating: [[2]]"}, "finish_reason": "stop"}
            ]}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # with the standard 5, the 7th concurrent client waits ~1 s for a SYN retry
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["BENCH_JUDGE_KEY"] = "local"
    prompt = load_prompt("paper-1to3")
    items = [JudgeItem(str(i), f"Question {i}?", "An answer.", "en") for i in range(count)]
    rates = {"sequential": [], "16 concurrent": []}
    for _ in range(repeats):
        for name, concurrency in (("sequential", 1), ("16 concurrent", 16)):
            cfg = JudgeArgs(backend="openai", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                            model="j", api_key_env="BENCH_JUDGE_KEY", concurrency=concurrency)  # fmt: skip
            start = time.perf_counter()
            BACKENDS.get("openai")(cfg, prompt, items, lambda item, judgement: None, Usage())
            rates[name].append(count / (time.perf_counter() - start))
    server.shutdown()
    print(f"judging: {count} judgements, server answers after {delay * 1000:.0f} ms, {repeats} runs of each")
    print_comparison(rates, "judgements/s", "concurrent over sequential judging", 4)


def main() -> None:
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--judgements", type=int, default=48)
    args = parser.parse_args()
    langid_bench(args.n, args.repeats)
    judge_bench(args.delay, args.judgements, args.repeats)


if __name__ == "__main__":
    main()
