"""The OpenAI-compatible HTTP API on Starlette: ``GET /v1/models``, ``POST /v1/completions`` and
``POST /v1/chat/completions`` (also streamed as server-sent events).

HTTP framing, keep-alive, timeouts and disconnects are the library's; each request's body is validated alone
(pydantic), so one bad prompt fails only itself; every error is a JSON body in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from babeltune.inference.decoding import Decoding
from babeltune.inference.decoding import split_at_stop as cut
from babeltune.serve.engine import Gone, ServedModel
from babeltune.templates import template

DISCONNECT_POLL = 0.25  # seconds between looks at whether a waiting client is still there


@dataclass
class Limits:
    max_tokens: int = 1024  # largest max_tokens a request may ask for
    max_request_bytes: int = 1_000_000
    max_prompts: int = 64  # prompts in one /v1/completions request
    max_prompt_tokens: int = 8192  # a longer prompt would hold the model for minutes


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}
        return JSONResponse({"error": error}, status_code=self.status)


# --- request bodies -------------------------------------------------------------------------------------


def _valid_text(text: str) -> str:
    """Text a tokenizer can take: a lone surrogate (valid JSON, invalid Unicode) is refused here, alone."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"not valid Unicode (a lone surrogate at character {err.start})") from None
    return text


class DecodingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send fields this server does not use

    model: str | None = None
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    temperature: float = Field(1.0, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    n: Literal[1] = 1
    stop: str | list[str] | None = None
    seed: StrictInt | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> list[str] | None:
        if stop is None:  # the model's own: its template's stop strings
            return None
        stops = [stop] if isinstance(stop, str) else stop
        if len(stops) > 4 or not all(stops):
            raise ValueError("at most 4 non-empty strings")
        return [_valid_text(s) for s in stops]


class CompletionRequest(DecodingRequest):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, prompt: str | list[str]) -> list[str]:
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not prompts or not all(p.strip() for p in prompts):
            raise ValueError("empty")
        return [_valid_text(p) for p in prompts]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content")
    @classmethod
    def _content(cls, content: str) -> str:
        return _valid_text(content)


class ChatRequest(DecodingRequest):
    messages: list[Message] = Field(min_length=1)


MESSAGES = {
    "max_tokens": "max_tokens must be an integer from 1 to {max_tokens}",
    "max_completion_tokens": "max_completion_tokens must be an integer from 1 to {max_tokens}",
    "temperature": "temperature must be a number from 0 to 2",
    "top_p": "top_p must be a number in (0, 1]",
    "n": "only n=1 is supported",
    "stop": "stop must be a string or a list of at most 4 non-empty strings",
    "seed": "seed must be an integer from 0 to 2**63-1",
    "prompt": "prompt must be a non-empty string or a list of non-empty strings",
    "messages": "messages must be a non-empty list, each with a role (system, user, assistant) and string content",
    "stream": "stream must be true or false",
}


def parse(kind: type[DecodingRequest], body: object, limits: Limits) -> DecodingRequest:
    """A validated request, or an ApiError that names the parameter (and says why, for bad text)."""
    try:
        request = kind.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        message = MESSAGES.get(param, f"{param}: {first['msg']}").format(max_tokens=limits.max_tokens)
        if "Unicode" in first["msg"]:
            message = f"{param} is {first['msg'].removeprefix('Value error, ')}"
        raise ApiError(400, message, param=param) from None
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and not 1 <= value <= limits.max_tokens:
            raise ApiError(400, MESSAGES[name].format(max_tokens=limits.max_tokens), param=name)
    return request


def decoding(request: DecodingRequest, limits: Limits, template_stops: list[str]) -> Decoding:
    """The generation settings of a request; without max_tokens (the openai client's default) it gets the
    server's default, which is never above the server's own limit; without stop, the training template's
    stop strings (as the generate stage applies them: a tuned model otherwise runs on into the next
    ``### Instruction:``)."""
    max_tokens = request.max_tokens or request.max_completion_tokens or min(256, limits.max_tokens)
    return Decoding(
        max_new_tokens=max_tokens, do_sample=request.temperature > 0, temperature=request.temperature or 1.0,
        top_p=request.top_p, stop=template_stops if request.stop is None else request.stop, seed=request.seed or 0,
    )  # fmt: skip


def chat_prompt(served: ServedModel, messages: list[Message]) -> str:
    try:
        return template(served.template).from_messages(served.tokenizer, [m.model_dump() for m in messages])
    except ValueError as err:
        raise ApiError(400, str(err), param="messages") from None


# --- the app ----------------------------------------------------------------------------------------------


def make_app(served: ServedModel, limits: Limits, api_key: str | None) -> Starlette:
    api = Api(served, limits, api_key)
    routes = [
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
    ]
    handlers = {ApiError: api_error, HTTPException: http_error, Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers)


class Api:
    """The endpoints of one served model: each checks the key and the request, then answers or says why not."""

    def __init__(self, served: ServedModel, limits: Limits, api_key: str | None) -> None:
        self.served, self.limits, self.api_key = served, limits, api_key
        # Each waiting request holds a thread while the model works: as many as may be batched, and more.
        self.workers = ThreadPoolExecutor(
            max_workers=4 * served.max_batch, thread_name_prefix="babeltune-serve"
        )

    def check_key(self, request: Request) -> None:
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise ApiError(
                401, "invalid or missing API key (Authorization: Bearer ...)", "authentication_error"
            )

    async def body_of(self, request: Request) -> dict:
        """The request's JSON object, read within the size limit, for this server's model."""
        self.check_key(request)
        limit = self.limits.max_request_bytes
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limit):
            raise ApiError(413, f"request body over {limit} bytes")
        data = bytearray()
        try:
            async for chunk in request.stream():  # a chunked body has no length to check first
                data += chunk
                if len(data) > limit:
                    raise ApiError(413, f"request body over {limit} bytes")
        except ClientDisconnect:
            raise ApiError(400, "the client went away before its request body ended") from None
        try:
            body = json.loads(data or b"null")
        except (ValueError, RecursionError) as err:
            raise ApiError(400, f"request body is not valid JSON: {str(err)[:200]}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        if body.get("model") not in (None, self.served.name):
            model = str(body.get("model"))[:100]
            raise ApiError(404, f"model {model!r} not found; this server has {self.served.name!r}",
                           "not_found_error", "model")  # fmt: skip
        return body

    def prompt_tokens(self, prompts: list[str], param: str) -> int:
        """The prompts' tokens in all (the reply's usage), each prompt within --max-prompt-tokens."""
        total, limit = 0, self.limits.max_prompt_tokens
        for p in prompts:
            n = len(self.served.tokenizer(p, add_special_tokens=False)["input_ids"])
            if n > limit:
                raise ApiError(400, f"the prompt is {n:,} tokens, over this server's limit of {limit:,} "
                               "(--max-prompt-tokens)", param=param)  # fmt: skip
            total += n
        return total

    async def answer(self, request: Request, prompts: list[str], gen: Decoding) -> list[tuple[str, int]]:
        """The answers, made in a worker thread; a client that hangs up meanwhile stops its generation."""
        loop, gone = asyncio.get_running_loop(), threading.Event()
        work = loop.run_in_executor(self.workers, self.served.complete, prompts, gen, None, gone)
        while not work.done():
            await asyncio.wait({work}, timeout=DISCONNECT_POLL)
            if not work.done() and await request.is_disconnected():
                gone.set()
        try:
            return work.result()
        except Gone:
            raise ApiError(499, "the client closed the request", "client_closed") from None
        except Exception as err:  # noqa: BLE001 - the model failed on this request alone
            raise ApiError(
                500, f"generation failed: {type(err).__name__}: {str(err)[:200]}", "server_error"
            ) from None

    def envelope(self, kind: str, choices: list, prompt_tokens: int, answers: list) -> JSONResponse:
        completion_tokens = sum(n for _, n in answers)
        return JSONResponse({
            "id": f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": kind, "created": int(time.time()), "model": self.served.name, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })  # fmt: skip

    async def models(self, request: Request) -> JSONResponse:
        self.check_key(request)
        return JSONResponse({"object": "list", "data": [
            {"id": self.served.name, "object": "model", "created": 0, "owned_by": "babeltune"}]})  # fmt: skip

    async def completions(self, request: Request):
        req = parse(CompletionRequest, await self.body_of(request), self.limits)
        gen = decoding(req, self.limits, list(template(self.served.template).stops))
        if len(req.prompt) > self.limits.max_prompts:
            raise ApiError(400, f"at most {self.limits.max_prompts} prompts per request", param="prompt")
        n_prompt = self.prompt_tokens(req.prompt, "prompt")
        if req.stream:
            if len(req.prompt) != 1:
                raise ApiError(400, "streaming takes one prompt", param="prompt")
            return stream(self.served, req.prompt[0], gen, chat=False)
        answers = await self.answer(request, req.prompt, gen)
        choices = []
        for i, (text, n) in enumerate(answers):
            text, stopped = cut(text, gen.stop)
            choices.append(
                {"index": i, "text": text, "logprobs": None, "finish_reason": finish(stopped, n, gen)}
            )
        return self.envelope("text_completion", choices, n_prompt, answers)

    async def chat(self, request: Request):
        req = parse(ChatRequest, await self.body_of(request), self.limits)
        gen = decoding(req, self.limits, list(template(self.served.template).stops))
        prompt = chat_prompt(self.served, req.messages)
        n_prompt = self.prompt_tokens([prompt], "messages")
        if req.stream:
            return stream(self.served, prompt, gen, chat=True)
        answers = await self.answer(request, [prompt], gen)
        text, stopped = cut(answers[0][0], gen.stop)
        choice = {"index": 0, "message": {"role": "assistant", "content": text.strip()},
                  "finish_reason": finish(stopped, answers[0][1], gen)}  # fmt: skip
        return self.envelope("chat.completion", [choice], n_prompt, answers)


def finish(stopped: bool, n_tokens: int, gen: Decoding) -> str:
    return "length" if not stopped and n_tokens >= gen.max_new_tokens else "stop"


async def api_error(request: Request, err: ApiError) -> JSONResponse:
    return err.response()


async def http_error(request: Request, err: HTTPException) -> JSONResponse:
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(
        err.status_code, "invalid_request_error"
    )
    return ApiError(err.status_code, f"{err.detail}: {request.method} {request.url.path}", kind).response()


async def server_error(request: Request, err: Exception) -> JSONResponse:
    return ApiError(500, f"{type(err).__name__}: {str(err)[:200]}", "server_error").response()


def stream(served: ServedModel, prompt: str, gen: Decoding, chat: bool) -> StreamingResponse:
    """Server-sent events; text near a possible stop string is held back until it is safe. A client that
    hangs up stops the generation at its next token (the model is free again at once)."""
    from transformers import AsyncTextIteratorStreamer

    ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(delta: str | None, finish: str | None = None, first: bool = False) -> str:
        if chat:
            payload = (
                {"role": "assistant", "content": delta or ""}
                if first
                else ({"content": delta} if delta else {})
            )
            choice = {"index": 0, "delta": payload, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
        chunk = {
            "id": ident,
            "object": kind,
            "created": int(time.time()),
            "model": served.name,
            "choices": [choice],
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    async def events():
        streamer = AsyncTextIteratorStreamer(served.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled, failed = threading.Event(), []

        def work() -> None:
            try:
                served.complete([prompt], gen, streamer, cancelled)
            except Exception as err:  # noqa: BLE001 - said to the client as the stream's last event
                failed.append(err)
                streamer.end()  # else the client would wait for tokens that never come

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            text, sent, stopped = "", 0, False
            hold = max((len(s) for s in gen.stop), default=1) - 1
            if chat:
                yield event(None, first=True)
            async for piece in streamer:
                text += piece
                visible, stopped = cut(text, gen.stop)
                safe = len(visible) if stopped else max(sent, len(visible) - hold)
                if safe > sent:
                    yield event(visible[sent:safe])
                    sent = safe
                if stopped:
                    break
            if failed:
                error = {"message": f"generation failed: {type(failed[0]).__name__}: {str(failed[0])[:200]}",
                         "type": "server_error", "param": None, "code": None}  # fmt: skip
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            if not stopped and len(text) > sent:
                yield event(text[sent:])
            yield event(None, finish="stop" if stopped else "length")
            yield "data: [DONE]\n\n"
        finally:
            cancelled.set()  # the client is gone, or the answer is complete: either way, stop generating

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
