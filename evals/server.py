"""An OpenAI-compatible chat-completions server (stdlib `http.server`), so any OpenAI
client, and our own answer generation and LLM judge, can talk to a trained model.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (`messages`, `max_tokens`,
`temperature`, `top_p`, `n`; no streaming). A `ChatBackend` does the work; requests are
served on threads and the backend is called under a lock (one model, one forward at a time).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

log = logging.getLogger("align")


class ChatBackend(Protocol):
    name: str

    def reply(self, messages: list[dict], *, max_tokens: int, temperature: float, top_p: float, n: int) -> list[str]:
        ...


class LocalModelBackend:
    """A model directory (or any ModelSpec path) answered through `align.generation.generate`."""

    def __init__(self, model, tokenizer, name: str = "model", seed: int = 0):
        self.model, self.tokenizer, self.name, self.seed = model, tokenizer, name, seed

    @classmethod
    def load(cls, path: str, name: str | None = None) -> LocalModelBackend:
        from align.config.model_spec import ModelSpec
        from align.models import load_model
        from evals.answers import model_label

        model, tok = load_model(ModelSpec(path=path))
        return cls(model, tok, name or model_label(path))

    def reply(self, messages, *, max_tokens, temperature, top_p, n):
        from align.generation import SamplingConfig, generate

        sampling = SamplingConfig(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, batch_size=1)
        return generate(self.model, self.tokenizer, [messages], sampling, seed=self.seed)[0]


class ScriptedBackend:
    """Test utility: replies from a function of the messages, and records every request.

    It still runs behind the real HTTP server, so clients are exercised end to end.
    `fail_first` answers the first N requests with HTTP 503 (to exercise retries).
    """

    def __init__(self, respond, name: str = "scripted", fail_first: int = 0):
        self.respond, self.name, self.fail_first = respond, name, fail_first
        self.requests: list[list[dict]] = []

    def reply(self, messages, *, max_tokens, temperature, top_p, n):
        self.requests.append(messages)
        return [self.respond(messages) for _ in range(n)]


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, fmt, *args):  # route through logging, quietly
        log.debug("serve: " + fmt, *args)

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.backend.name, "object": "model",
                                                          "owned_by": "steeralign"}]})
        elif self.path.rstrip("/") in ("", "/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            messages = req["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                           for m in messages):
                raise ValueError("messages must be a list of {role, content}")
            max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or self.server.max_tokens)
            temperature = float(req.get("temperature", 0.0) or 0.0)
            top_p, n = float(req.get("top_p", 1.0) or 1.0), int(req.get("n", 1) or 1)
            if req.get("stream"):
                raise ValueError("stream is not supported")
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            return self._error(400, f"bad request: {exc}")
        backend = self.server.backend
        if getattr(backend, "fail_first", 0) > 0:
            backend.fail_first -= 1
            return self._error(503, "temporarily unavailable")
        max_tokens = min(max_tokens, self.server.max_tokens)
        with self.server.lock:
            texts = backend.reply(messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n)
        self._send(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": backend.name,
            "choices": [{"index": k, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                        for k, t in enumerate(texts)],
        })  # no "usage": it is optional in the API and we do not count tokens


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: ChatBackend, host: str = "127.0.0.1", port: int = 8000, max_tokens: int = 512):
        super().__init__((host, port), _Handler)
        self.backend, self.max_tokens, self.lock = backend, max_tokens, threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start_background(self) -> threading.Thread:
        """Serve on a daemon thread (tests, notebooks); stop with `shutdown()`."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread
