"""A stand-in OpenAI-compatible server for the benchmark, run as its own process.

    python -m bench.fake_llm_server --port 8123 [--exact-tokens]

It answers `POST /v1/chat/completions` in the real wire format: streamed as
server-sent events (a role chunk, 20 text chunks, a finish chunk, a usage chunk
and `[DONE]`), or as one completion when `stream` is false (the memory summary).
There is no delay: whatever time an answer takes is ours, not the model's.

The whole response is written at once, which costs this process as little as
possible: it shares two cores with the server being measured. For the same
reason `usage.prompt_tokens` is an estimate (4 characters a token) unless
`--exact-tokens` asks for the LLaMA-2 tokenizer the product counts with, which
costs about 1.5 ms per 1,000 tokens and is used only where the count matters.

`GET /stats` reports how many requests were answered and how long this process
took from a complete request to its response written, so the benchmark can
subtract the model's own time from the latency it measures.
"""

import argparse
import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import uvloop

CHUNKS = 20
# It states no figure: it cites whichever article it was given, and the
# guardrails withdraw an answer stating a figure its article does not (then
# the conversation goes to people and asks nothing more).
WORDS = [
    *("Your", "new", "card", "is", "on", "its", "way", "once", "you", "order"),
    *("it", "in", "the", "app,", "and", "you", "can", "follow", "it", "there."),
]
ANSWER_CHUNKS = [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(CHUNKS - 1)]
# The answer cites the first article it was given, as a well-behaved model
# does: an answer citing nothing it was given is withdrawn by the product.
_ARTICLE_ID = re.compile(r'<article id="A(\d+)"')
SUMMARY = "The customer asked about their card; the assistant answered from the help."


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.service_seconds = 0.0

    def as_json(self) -> bytes:
        mean_ms = 1000 * self.service_seconds / self.requests if self.requests else 0
        return json.dumps({"requests": self.requests, "mean_ms": mean_ms}).encode()


def _estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _exact_tokens() -> Callable[[str], int]:
    # Imported here so the default mode never loads the 16 MB model.
    from support_bot.bot.embeddings import count_tokens

    count_tokens("warm up")
    return count_tokens


def _prompt_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    return "\n".join(str(m.get("content", "")) for m in messages)


def _sse(event: object) -> bytes:
    data = b"data: " + (
        event if isinstance(event, bytes) else json.dumps(event).encode()
    )
    data += b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def streamed_response(body: dict[str, Any], prompt_tokens: int) -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "bench"),
    }

    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**base, "choices": [choice]}

    events: list[object] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": text}) for text in ANSWER_CHUNKS]
    cited = _ARTICLE_ID.search(_prompt_text(body))
    events.append(chunk({"content": f" [A{cited.group(1)}]." if cited else "."}))
    events.append(chunk({}, "stop"))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": CHUNKS,
        "total_tokens": prompt_tokens + CHUNKS,
    }
    events.append({**base, "choices": [], "usage": usage})
    events.append(b"[DONE]")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    return head + b"".join(_sse(e) for e in events) + b"0\r\n\r\n"


def completion_response(body: dict[str, Any], prompt_tokens: int) -> bytes:
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "bench"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": SUMMARY},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 20,
            "total_tokens": prompt_tokens + 20,
        },
    }
    return _json_response(200, payload)


def _json_response(status: int, payload: object) -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reason = b"OK" if status == 200 else b"Not Found"
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (status, reason, len(data), data)
    )


class FakeLLMServer:
    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self.count_tokens = count_tokens
        self.stats = Stats()

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Keep-alive, as the SDK's HTTP client expects of a real server.
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                writer.write(await self._respond(head, reader))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _respond(self, head: bytes, reader: asyncio.StreamReader) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        if method == "GET" and path == "/stats":
            return _json_response(200, self.stats.as_json())
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return _json_response(404, {"error": {"message": "Not found"}})

        started = time.perf_counter()
        body = json.loads(raw)
        prompt_tokens = self.count_tokens(_prompt_text(body))
        if body.get("stream"):
            response = streamed_response(body, prompt_tokens)
        else:
            response = completion_response(body, prompt_tokens)
        self.stats.requests += 1
        self.stats.service_seconds += time.perf_counter() - started
        return response


async def serve(port: int, exact_tokens: bool) -> None:
    counter = _exact_tokens() if exact_tokens else _estimate_tokens
    fake = FakeLLMServer(counter)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", port, backlog=1024)
    print(f"fake LLM listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exact-tokens", action="store_true")
    args = parser.parse_args()
    # uvicorn[standard] brings uvloop; the server under test runs on it too.
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port, args.exact_tokens))


if __name__ == "__main__":
    main()
