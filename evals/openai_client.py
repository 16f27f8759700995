"""A minimal client for OpenAI-compatible `/v1/chat/completions` endpoints (stdlib only).

Used for the model under test (remote answers) and the LLM judge. The API key is read
from an environment variable named by the caller and never logged.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from align.errors import AlignError

log = logging.getLogger("align")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(AlignError):
    """The endpoint failed after every retry (or refused the request outright). `code` is the
    OpenAI error code of a refusal (e.g. "context_length_exceeded"), when the server gave one."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


@dataclass
class ChatEndpoint:
    """One OpenAI-compatible endpoint. `api_key_env` names the variable holding the key.

    A slow endpoint makes a run slower, not fail: a request that times out is retried with
    twice the timeout, and the number of requests in flight halves (down to one), so a
    server that answers one request at a time is no longer sent requests it cannot reach
    before they expire. Other transient failures (RETRY_STATUS, a dropped connection) are
    retried with exponential backoff.
    """

    base_url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 300.0
    retries: int = 4
    backoff: float = 1.0  # seconds; doubles after each failed try
    concurrency: int = 4
    _in_flight: int = field(default=0, init=False, repr=False)
    _limit: int = field(default=0, init=False, repr=False)
    _slots: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    def __post_init__(self):
        self._limit = max(1, self.concurrency)

    def _acquire(self) -> None:
        with self._slots:
            self._slots.wait_for(lambda: self._in_flight < self._limit)
            self._in_flight += 1

    def _release(self) -> None:
        with self._slots:
            self._in_flight -= 1
            self._slots.notify_all()

    def _slow_down(self) -> None:
        with self._slots:
            if self._limit > 1:
                self._limit = max(1, self._limit // 2)
                log.warning("%s: timed out; %d request(s) in flight from now on", self._url(), self._limit)

    def _url(self) -> str:
        base = self.base_url.rstrip("/")
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EndpointError(f"environment variable {self.api_key_env} (the API key) is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def chat(self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int = 1024) -> str:
        """The assistant's reply text; retries transient failures with exponential backoff."""
        body = json.dumps({"model": self.model, "messages": messages, "temperature": temperature,
                           "max_tokens": max_tokens, "n": 1}).encode()
        delay, timeout = self.backoff, self.timeout
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self._url(), data=body, headers=self._headers(), method="POST")
            self._acquire()
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                return data["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS or attempt == self.retries:
                    message, code = _error_body(exc)
                    raise EndpointError(f"{self._url()}: HTTP {exc.code} {exc.reason}{message}", code) from exc
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
                if attempt == self.retries:
                    raise EndpointError(f"{self._url()}: {exc} (after {attempt + 1} tries; raise --timeout or "
                                        "--retries, or lower --concurrency)") from exc
                reason = str(exc)
                if timed_out:
                    self._slow_down()
                    timeout *= 2
                    reason += f"; next timeout {timeout:.0f}s"
            except (KeyError, IndexError, ValueError) as exc:
                raise EndpointError(f"{self._url()}: unexpected response ({exc})") from exc
            finally:
                self._release()
            log.warning("%s: %s, retry %d/%d in %.1fs", self._url(), reason, attempt + 1, self.retries, delay)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def chat_many(self, conversations: list[list[dict]], *, refused_as: str | None = None, **kwargs) -> list[str]:
        """`chat` over many conversations, at most `concurrency` requests in flight, order kept.

        `refused_as`: the reply to use for a conversation the endpoint refuses because it does not
        fit the model's context (`context_length_exceeded`), instead of failing the whole run; each
        is logged. Other errors still raise.
        """
        refused = []

        def one(messages):
            try:
                return self.chat(messages, **kwargs)
            except EndpointError as exc:
                if refused_as is None or exc.code != "context_length_exceeded":
                    raise
                refused.append(str(exc))
                return refused_as

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            out = list(pool.map(one, conversations))
        if refused:
            log.warning("%s: %d of %d requests do not fit the model's context (%s)", self._url(), len(refused),
                        len(conversations), refused[0].split(": ", 2)[-1][:160])
        return out


def _error_body(exc: urllib.error.HTTPError) -> tuple[str, str | None]:
    """(': <message>', code) from an OpenAI-shaped error body, if there is one."""
    try:
        error = json.loads(exc.read().decode("utf-8"))["error"]
        return f": {error['message']}", error.get("code")
    except Exception:  # no body, not JSON, another shape
        return "", None
