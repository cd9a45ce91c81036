"""A fake OpenAI-compatible chat server that speaks the real wire format.

Tests reach it through the real SDK over HTTP, so retries, timeouts, chunked
streaming and dropped connections behave as they do against a real server.
Each test scripts the replies it needs; anything unscripted gets `default`.
"""

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest


@dataclass(frozen=True)
class Reply:
    """One scripted answer to one request."""

    chunks: Sequence[str] = ("Hello", " there.")
    # Seconds before the response starts, and between streamed chunks.
    delay: float = 0.0
    chunk_delay: float = 0.0
    # Write every chunk in one go, as a model that is ahead of its reader.
    burst: bool = False
    # Drop the connection, mid-body, after this many text chunks; a request
    # that is not streamed gets its connection dropped before any answer.
    cut_after: int | None = None
    # Anything but 200 answers with an error body instead of a completion.
    status: int = 200
    retry_after: float | None = None
    # None ends the stream (with [DONE]) without ever giving a reason.
    finish_reason: str | None = "stop"
    usage: bool = True
    prompt_tokens: int = 42
    completion_tokens: int = 7
    # Call the hand-off tool with this reason (after any text chunks).
    handoff: str | None = None
    # A log-probability to report for every text chunk.
    logprob: float | None = None


class FakeLLM:
    def __init__(self) -> None:
        self.default = Reply()
        # Parsed JSON body of every request received, in order.
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        # Set on stop, so handlers asleep in a scripted delay give up at once.
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        # A short poll keeps `stop()`, which waits for the next poll, quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-llm",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def take(self, body: dict[str, Any]) -> Reply:
        """Record a request and pick the reply it gets."""
        with self._lock:
            self.requests.append(body)
            return self._queue.popleft() if self._queue else self.default


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLM


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for chunked streaming, as real servers do; a cut then looks to
    # the client like a body that ends early, not like a complete response.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(
                404,
                {"error": {"message": "Not found", "type": "invalid_request_error"}},
            )
            return

        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        fake = cast(_Server, self.server).fake
        reply = fake.take(body)
        try:
            if fake.stopping.wait(reply.delay):
                return
            if reply.status != 200:
                self._send_error(reply)
            elif body.get("stream"):
                self._stream(reply, body, fake.stopping)
            elif reply.cut_after is not None:
                self._cut()
            else:
                self._send_json(200, _completion(reply, body))
        except OSError:
            # The client gave up (timeout, cancellation); nobody is listening.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _stream(
        self, reply: Reply, body: dict[str, Any], stopping: threading.Event
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self._end_headers()

        events = _chunk_events(reply, body)
        if reply.cut_after is not None:
            # Event 0 carries only the role; the text chunks follow it.
            events = events[: reply.cut_after + 1]
        if reply.burst:
            self._write_chunk(
                b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
            )
            events = []
        for index, event in enumerate(events):
            if index > 1 and stopping.wait(reply.chunk_delay):
                return
            self._write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")

        if reply.cut_after is not None:
            self._cut()
            return
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _send_error(self, reply: Reply) -> None:
        kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
        payload = {"error": {"message": f"Scripted {reply.status}", "type": kind}}
        headers = {}
        if reply.retry_after is not None:
            headers["Retry-After"] = str(reply.retry_after)
        self._send_json(reply.status, payload, headers)

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._end_headers()
        self.wfile.write(data)

    def _end_headers(self) -> None:
        # One request per connection keeps handler threads from outliving a
        # test while they wait for a next request that never comes.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _cut(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def _chunk_events(reply: Reply, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of one streamed reply, in order."""
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "system_fingerprint": None,
    }

    def choice(
        delta: dict[str, Any], finish_reason: str | None = None, text: str = ""
    ) -> object:
        logprobs = None
        if reply.logprob is not None and text:
            logprobs = {
                "content": [
                    {
                        "token": text,
                        "logprob": reply.logprob,
                        "bytes": None,
                        "top_logprobs": [],
                    }
                ]
            }
        return {
            "index": 0,
            "delta": delta,
            "finish_reason": finish_reason,
            "logprobs": logprobs,
        }

    events = [{**base, "choices": [choice({"role": "assistant", "content": ""})]}]
    events += [
        {**base, "choices": [choice({"content": text}, text=text)]}
        for text in reply.chunks
    ]
    if reply.handoff is not None:
        call = {
            "index": 0,
            "id": "call_fake",
            "type": "function",
            "function": {
                "name": "handoff",
                "arguments": json.dumps({"reason": reply.handoff}),
            },
        }
        events.append({**base, "choices": [choice({"tool_calls": [call]})]})
        events.append({**base, "choices": [choice({}, "tool_calls")]})
    elif reply.finish_reason is not None:
        events.append({**base, "choices": [choice({}, reply.finish_reason)]})
    wants_usage = (body.get("stream_options") or {}).get("include_usage")
    if reply.usage and wants_usage:
        # OpenAI's own shape: a last chunk with no choices at all.
        events.append({**base, "choices": [], "usage": _usage(reply)})
    return events


def _completion(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": "".join(reply.chunks)}
    completion: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
    }
    if reply.usage:
        completion["usage"] = _usage(reply)
    return completion


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    try:
        yield server
    finally:
        server.stop()
