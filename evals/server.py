"""An OpenAI-compatible chat-completions server, so any OpenAI client (the official `openai`
package, our answer generation, our LLM judge) can talk to a trained model.

FastAPI (request validation, routing, SSE) on uvicorn. What is ours is the part no web
library does: dynamic batching over one model. Requests land in a queue; one worker thread
takes whatever has arrived within `batch_wait_s` (up to `max_batch` answers), groups it by
sampling settings, and decodes each group as one batch (`align.generation`, rows leave the
batch as they finish). A request whose client has gone is dropped before it is decoded, and
its rows leave a batch that is decoding at the next step. Through an engine (`align serve
--engine hf|vllm`, `EngineBackend`) the queue batching is the same, but each batch is one
engine call that runs to its end (no mid-decode cancellation).

The API as OpenAI defines it for `POST /v1/chat/completions`: `model` (must be the served
one, else 404 `model_not_found`), `messages` (text content, or a list of text parts),
`temperature` (0..2, default 1), `top_p`, `n`, `max_tokens` / `max_completion_tokens`, `stop`,
`seed`, `stream` (+ `stream_options.include_usage`); `usage` and a `finish_reason` of
`length` when an answer was cut at max_tokens. A prompt that does not fit the model's context
is a 400 `context_length_exceeded`; a max_tokens beyond what the context leaves after the prompt
is clamped to that room (the answer then ends with `length`), so one client setting serves
models of any context. `logprobs`, penalties and tools are refused with a 400
rather than ignored. Every error has OpenAI's shape: {"error": {"message", "type", "param",
"code"}}. Streaming sends the answer as SSE chunks once its batch has decoded (the batch
decodes together, so there is no earlier first token).
"""

import asyncio
import json
import logging
import queue
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

log = logging.getLogger("align")


# ---- request schema ------------------------------------------------------------------------
class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """POST /v1/chat/completions. Unknown fields are refused (400), as OpenAI does."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    user: str | None = None  # accepted: it does not change the answer
    metadata: dict[str, str] | None = None
    store: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops

    def unsupported(self) -> tuple[str, str] | None:
        """(param, message) for a valid request this server cannot honour."""
        if self.logprobs or self.top_logprobs:
            return "logprobs", "logprobs are not supported by this server"
        if self.presence_penalty or self.frequency_penalty:
            return "presence_penalty", "presence and frequency penalties are not supported by this server"
        return None


# ---- work items -------------------------------------------------------------------------------
@dataclass
class Choice:
    text: str
    finish_reason: str  # "stop" or "length"
    completion_tokens: int


@dataclass
class Job:
    """One request's generation; the worker fills `choices` (or `error`) and sets `done`."""

    messages: list[dict]
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    prompt_tokens: int = 0
    choices: list[Choice] = field(default_factory=list)
    error: str | None = None
    cancelled: bool = False
    decoded_tokens: int = 0  # tokens the model produced for this job (fewer than asked when cancelled)
    done: threading.Event = field(default_factory=threading.Event)

    def key(self) -> tuple:
        """Requests decoded in one batch share these."""
        return (self.temperature, self.top_p, self.seed)


def apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text up to the earliest stop string (excluded), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class ChatBackend(Protocol):
    """What the server needs from a model."""

    name: str
    context_length: int | None  # positions the model has (None: no limit)

    def count_tokens(self, messages: list[dict]) -> int:
        """Prompt tokens of `messages` as the model will see them (chat template applied)."""
        ...

    def run(self, jobs: list[Job]) -> None:
        """Fill every job's `choices` (jobs share `Job.key()`)."""
        ...


class LocalModelBackend:
    """A model directory (or any ModelSpec path) decoded through `align.generation`."""

    def __init__(self, model, tokenizer, name: str = "model", batch_size: int = 32):
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, name, batch_size
        self.context_length = getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def load(cls, path: str, name: str | None = None, **kwargs) -> "LocalModelBackend":
        from align.config.model_spec import ModelSpec
        from align.models import load_model
        from evals.answers import model_label

        model, tok = load_model(ModelSpec(path=path))
        return cls(model, tok, name or model_label(path), **kwargs)

    def count_tokens(self, messages: list[dict]) -> int:
        from align.chat import render

        return len(self.tokenizer(render(self.tokenizer, messages, add_generation_prompt=True),
                                  add_special_tokens=False)["input_ids"])

    def run(self, jobs: list[Job]) -> None:
        from align.generation import SamplingConfig, split_at_eos

        first = jobs[0]
        prompts = [j.messages for j in jobs for _ in range(j.n)]  # n choices: the prompt n times, one row each
        sampling = SamplingConfig(max_new_tokens=max(j.max_tokens for j in jobs), temperature=first.temperature,
                                  top_p=first.top_p, n=1, batch_size=self.batch_size)
        # no seed: a fresh one per batch (samples differ between calls); a seed: the same answer each time
        seed = first.seed if first.seed is not None else random.getrandbits(63)
        rows = iter(self.decode(jobs, prompts, sampling, seed))
        for job in jobs:
            for _ in range(job.n):
                ids = next(rows)
                job.decoded_tokens += len(ids)
                ids, finished = split_at_eos(ids[: job.max_tokens], self.stop_ids)  # the batch ran to its longest budget
                text, stopped = apply_stop(self.tokenizer.decode(ids, skip_special_tokens=True).strip(), job.stop)
                tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if stopped else len(ids)
                job.choices.append(Choice(text, "stop" if finished or stopped else "length", tokens))

    @property
    def stop_ids(self):
        from align.generation import stop_token_ids

        return stop_token_ids(self.model, self.tokenizer)

    def decode(self, jobs: list[Job], prompts: list[list[dict]], sampling, seed: int) -> list[list[int]]:
        """New token ids, one row per prompt, through the native loop: a request whose client has
        gone leaves the batch at the next step."""
        from align.generation import generate_tokens

        owner = [j for j in jobs for _ in range(j.n)]
        return [choices[0] for choices in generate_tokens(self.model, self.tokenizer, prompts, sampling, seed=seed,
                                                          stop_prompt=lambda i: owner[i].cancelled)]


class EngineBackend(LocalModelBackend):
    """The model served through a sampling engine (`align.engines`: hf or vllm) instead of the native
    loop. The worker's queue batching is the same (what arrives within `batch_wait_s` is one
    `engine.generate` call); what differs: a request cancelled while its batch decodes runs to the
    end of that batch (the engine call cannot drop rows midway; one cancelled before its batch
    starts is still dropped), and requests arriving meanwhile wait for the whole call (no
    continuous batching across calls, vllm included)."""

    def __init__(self, model, tokenizer, name: str = "model", batch_size: int = 32, engine: str = "hf"):
        from align.engines import make_engine

        super().__init__(model, tokenizer, name, batch_size)
        self.engine = make_engine(engine, model, tokenizer, seed=0)

    @property
    def stop_ids(self):
        return self.engine.stop_ids

    def decode(self, jobs, prompts, sampling, seed):
        return [choices[0] for choices in self.engine.generate(prompts, sampling, seed=seed).tokens]

    def close(self) -> None:
        self.engine.close()


def load_backend(path: str, name: str | None = None, *, engine: str = "native", batch_size: int = 32):
    """The backend `align serve` runs: the native loop (LocalModelBackend) or an EngineBackend."""
    if engine == "native":
        return LocalModelBackend.load(path, name, batch_size=batch_size)
    return EngineBackend.load(path, name, batch_size=batch_size, engine=engine)


class ScriptedBackend:
    """Test utility: replies from a function of the messages, and records every request.

    It still runs behind the real HTTP server, so clients are exercised end to end. Tokens are
    whitespace words. `fail_first` answers the first N requests with HTTP 503 (retries).
    """

    context_length = None

    def __init__(self, respond, name: str = "scripted", fail_first: int = 0):
        self.respond, self.name, self.fail_first = respond, name, fail_first
        self.requests: list[list[dict]] = []

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def run(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.requests.append(job.messages)
            for _ in range(job.n):
                words = self.respond(job.messages).split(" ")
                text, stopped = apply_stop(" ".join(words[: job.max_tokens]), job.stop)
                cut = len(words) > job.max_tokens and not stopped
                job.choices.append(Choice(text, "length" if cut else "stop", len(text.split())))


# ---- the batching worker -------------------------------------------------------------------------
class BatchWorker:
    """One thread owns the model: it takes the queued jobs that arrived within `wait_s` (up to
    `max_batch` answers) and runs each group of equal sampling settings as one batch."""

    def __init__(self, backend: ChatBackend, max_batch: int = 32, wait_s: float = 0.02):
        self.backend, self.max_batch, self.wait_s = backend, max_batch, wait_s
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.batches: list[int] = []  # answers per decoded batch (for tests and logs)
        self.recent: deque[Job] = deque(maxlen=64)  # the last jobs run, cancelled ones included
        self._thread = threading.Thread(target=self._loop, daemon=True, name="align-serve-worker")
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            pending, answers = [job], job.n
            deadline = time.monotonic() + self.wait_s
            while answers < self.max_batch:
                try:
                    nxt = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self.jobs.put(None)
                    break
                pending.append(nxt)
                answers += nxt.n
            live = [j for j in pending if not j.cancelled]
            for j in pending:
                if j.cancelled:
                    j.done.set()
            groups: dict[tuple, list[Job]] = {}
            for j in live:
                groups.setdefault(j.key(), []).append(j)
            for group in groups.values():
                self.batches.append(sum(j.n for j in group))
                try:
                    self.backend.run(group)
                except Exception as exc:  # the request fails, the server stays up
                    log.exception("serve: generation failed")
                    for j in group:
                        j.error = f"generation failed: {type(exc).__name__}: {exc}"
                for j in group:
                    self.recent.append(j)
                    j.done.set()


# ---- the HTTP app --------------------------------------------------------------------------------
def _error(status: int, message: str, *, param: str | None = None, code: str | None = None,
           kind: str = "invalid_request_error"):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def build_app(backend: ChatBackend, worker: BatchWorker, max_tokens: int = 512):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="steeralign serve", docs_url=None, redoc_url=None)
    model_card = {"id": backend.name, "object": "model", "created": int(time.time()), "owned_by": "steeralign"}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"] if p != "body"]
        return _error(400, f"{'.'.join(loc) or 'body'}: {first['msg']}", param=".".join(loc) or None)

    @app.exception_handler(HTTPException)
    async def _http(_request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), kind="not_found_error" if exc.status_code == 404
                      else "invalid_request_error")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != backend.name:
            return _error(404, f"The model `{model_id}` does not exist", param="model", code="model_not_found")
        return model_card

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        if body.model != backend.name:
            return _error(404, f"The model `{body.model}` does not exist (this server serves `{backend.name}`)",
                          param="model", code="model_not_found")
        refused = body.unsupported()
        if refused:
            return _error(400, refused[1], param=refused[0])
        if getattr(backend, "fail_first", 0) > 0:  # ScriptedBackend: exercise client retries
            backend.fail_first -= 1
            return _error(503, "temporarily unavailable", kind="server_error")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in body.messages]
        prompt_tokens = await asyncio.to_thread(backend.count_tokens, messages)
        limit = backend.context_length
        wanted = body.max_completion_tokens or body.max_tokens
        room = (limit - prompt_tokens) if limit else None
        if room is not None and room < 1:
            return _error(400, f"This model's maximum context length is {limit} tokens. However, your messages "
                               f"resulted in {prompt_tokens} tokens, leaving no room for a completion.",
                          param="messages", code="context_length_exceeded")
        budget = min(wanted or max_tokens, max_tokens, room or max_tokens)
        job = Job(messages, body.n, budget, body.temperature, body.top_p, list(body.stop or []), body.seed,
                  prompt_tokens)
        worker.submit(job)
        while not job.done.is_set():  # a client that leaves stops its request before it is decoded
            if await request.is_disconnected():
                job.cancelled = True
                return _error(499, "client closed the request")
            await asyncio.sleep(0.005)
        if job.error:
            return _error(500, job.error, kind="server_error")
        return _stream(job, backend.name, body) if body.stream else _completion(job, backend.name)

    def _stream(job: Job, name: str, body: ChatRequest):
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def chunk(choices, usage=None):
            payload = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                       "choices": choices}
            if usage is not None:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n"

        def events():
            for k, c in enumerate(job.choices):
                yield chunk([{"index": k, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                for piece in _pieces(c.text):
                    yield chunk([{"index": k, "delta": {"content": piece}, "finish_reason": None}])
                yield chunk([{"index": k, "delta": {}, "finish_reason": c.finish_reason}])
            if body.stream_options and body.stream_options.include_usage:
                yield chunk([], _usage(job))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _pieces(text: str) -> list[str]:
    """The answer in word-sized pieces for streaming (each keeps its leading space)."""
    import re

    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _usage(job: Job) -> dict:
    completion = sum(c.completion_tokens for c in job.choices)
    return {"prompt_tokens": job.prompt_tokens, "completion_tokens": completion,
            "total_tokens": job.prompt_tokens + completion}


def _completion(job: Job, name: str) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": name, "usage": _usage(job),
            "choices": [{"index": k, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason, "logprobs": None} for k, c in enumerate(job.choices)]}


class ChatServer:
    """uvicorn serving `build_app`, in the foreground (`serve_forever`) or on a thread (tests)."""

    def __init__(self, backend: ChatBackend, host: str = "127.0.0.1", port: int = 8000, max_tokens: int = 512,
                 max_batch: int = 32, batch_wait_s: float = 0.02):
        import socket

        import uvicorn

        self.backend = backend
        self.worker = BatchWorker(backend, max_batch=max_batch, wait_s=batch_wait_s)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # bound now: port 0 picks a free port
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.server_address = self._socket.getsockname()
        config = uvicorn.Config(build_app(backend, self.worker, max_tokens), log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        self._server.run(sockets=[self._socket])

    def start_background(self) -> threading.Thread:
        """Serve on a daemon thread; returns once the server accepts connections. Stop with `shutdown()`."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="align-serve")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._thread

    def shutdown(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def server_close(self) -> None:
        self.worker.stop()
        self._socket.close()
        close = getattr(self.backend, "close", None)  # an engine backend's engine (vllm: its engine core)
        if close is not None:
            close()

