"""``babeltune serve``: an OpenAI-compatible endpoint for a base model, a tuned checkpoint or the embedded model.

The API (``api``) runs on Starlette under uvicorn; the model (``engine``) answers waiting requests together in
batches and uses the template it was trained with. Binds 127.0.0.1 unless told otherwise; an optional bearer
key; request size and ``max_tokens`` limits.
"""

from __future__ import annotations

import socket
import threading

from babeltune.registry import BabeltuneError
from babeltune.serve.api import ApiError, Limits, make_app
from babeltune.serve.engine import ServedModel, load

__all__ = ["ApiError", "Limits", "Server", "ServedModel", "load", "make_server"]


class Server:
    """uvicorn on a socket bound here (so port 0 is known before serving), run in the caller's thread."""

    def __init__(self, served: ServedModel, host: str, port: int, api_key: str | None, limits: Limits):
        import uvicorn

        try:
            self.socket = socket.create_server((host, port), backlog=2048)  # a burst of clients waits here
        except OSError as err:
            raise BabeltuneError(f"serve: cannot listen on {host}:{port}: {err.strerror}") from None
        config = uvicorn.Config(
            make_app(served, limits, api_key), log_level="warning", access_log=False, timeout_keep_alive=5,
            h11_max_incomplete_event_size=64 * 1024, timeout_graceful_shutdown=5,
        )  # fmt: skip
        self.uvicorn = uvicorn.Server(config)
        self.stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        return self.socket.getsockname()[:2]

    def serve_forever(self) -> None:
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.stopped.set()

    def shutdown(self) -> None:
        self.uvicorn.should_exit = True
        self.stopped.wait(timeout=30)


def make_server(
    served: ServedModel, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
    limits: Limits | None = None,
) -> Server:  # fmt: skip
    return Server(served, host, port, api_key, limits or Limits())
