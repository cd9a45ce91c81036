"""The engine for OpenAI and any server that speaks its chat-completions API.

That covers OpenAI itself, vLLM, Ollama, llama.cpp and most hosted gateways.
The SDK does the retrying; this module bounds the whole call by one deadline
and turns what went wrong into an `EngineError` kind the caller can act on.
"""

import asyncio
import errno
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from support_bot.bot.engine import (
    BotRequest,
    Completed,
    EngineError,
    ErrorKind,
    RetrievedArticle,
    StreamEvent,
    TextDelta,
    Turn,
)
from support_bot.bot.prompt import (
    Message,
    build_messages,
    build_self_check_messages,
    build_summary_messages,
    parse_citations,
    parse_self_check,
)

logger = logging.getLogger(__name__)

# A dead host should fail fast enough to leave room for a retry in the budget.
CONNECT_TIMEOUT = 5.0
# Room for a summary of about 120 words, with slack for wordy tokenizers.
SUMMARY_MAX_TOKENS = 300
# A one-line JSON verdict.
SELF_CHECK_MAX_TOKENS = 40
HANDOFF_TOOL_NAME = "handoff"
# The model's own way to say it should not answer. Servers without tool
# support reject the request; LLM_TOOLS=false leaves the tool out.
HANDOFF_TOOL = {
    "type": "function",
    "function": {
        "name": HANDOFF_TOOL_NAME,
        "description": (
            "Hand the conversation to a human support agent instead of answering, "
            "when the articles do not answer the question, when answering would "
            "need a decision only staff can make, or when the customer is upset."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "description": "Why, in a few words."}
            },
            "required": ["reason"],
        },
    },
}

# The SDK refuses to start without a key; local servers ignore it.
PLACEHOLDER_API_KEY = "no-key"

ChunkStream = openai.AsyncStream[object]


class _HttpResponse(Protocol):
    @property
    def status_code(self) -> int: ...


@dataclass
class _Attempts:
    """What the HTTP layer saw during one call, the SDK's retries included."""

    count: int = 0
    # Status of the latest answer; None while an attempt is in flight.
    last_status: int | None = None


# The SDK retries inside one `create()` call and reports nothing until it
# gives up. HTTP event hooks run in the caller's task, so they find the call's
# record here, even with many conversations sharing one client.
_current_attempts: ContextVar[_Attempts | None] = ContextVar(
    "current_attempts", default=None
)


@dataclass
class _Reply:
    """A streamed reply, accumulated chunk by chunk."""

    model: str
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Arguments of a `handoff` tool call, streamed in pieces; None if no call.
    handoff_arguments: str | None = None
    logprobs: list[float] = field(default_factory=list)
    # The first half of a surrogate pair that ended the last chunk's text.
    held: str = ""

    def absorb(self, chunk: object) -> str:
        """Record `chunk`, one decoded `chat.completion.chunk`, and return its text.

        Servers differ in the details: the usage chunk may have an empty
        `choices` list or come with the last text chunk, some send no usage at
        all, and some leave out fields the schema calls required. Chunks come
        as the server sent them, so every field is read with a default and a
        value of the wrong type counts as missing.
        """
        if not isinstance(chunk, dict):
            raise EngineError("upstream", "a stream chunk that is not an object")
        self.model = _text(chunk.get("model")) or self.model
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = _count(usage.get("prompt_tokens"))
            self.completion_tokens = _count(usage.get("completion_tokens"))

        text = ""
        for choice in _list(chunk.get("choices")):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            text += _text(delta.get("content"))
            for call in _list(delta.get("tool_calls")):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                if function.get("name") not in (None, HANDOFF_TOOL_NAME):
                    continue
                pieces = _text(function.get("arguments"))
                self.handoff_arguments = (self.handoff_arguments or "") + pieces
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                for token in _list(logprobs.get("content")):
                    logprob = token.get("logprob") if isinstance(token, dict) else None
                    if isinstance(logprob, int | float):
                        self.logprobs.append(float(logprob))
            self.finish_reason = (
                _text(choice.get("finish_reason")) or self.finish_reason
            )

        text, self.held = _well_formed(self.held + text)
        if text:
            self.parts.append(text)
        return text

    def finish(self) -> str:
        """What is left when the stream ends: a pair's first half alone."""
        text, self.held = ("\ufffd" if self.held else ""), ""
        if text:
            self.parts.append(text)
        return text


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _well_formed(text: str) -> tuple[str, str]:
    """`text` as stored text must be, and what to hold for the next chunk.

    JSON escapes an emoji as a surrogate pair ("\\ud83d\\ude00"), which a
    server may split over two chunks, and a model can emit half of one.
    Pairs are joined, a first half at the end is held back for the next
    chunk, and any other half becomes U+FFFD: no database or tokenizer
    takes a lone one.
    """
    if not _SURROGATE.search(text):
        return text, ""
    held = ""
    if "\ud800" <= text[-1] <= "\udbff":
        text, held = text[:-1], text[-1]
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return joined, held


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        timeout: float,
        max_retries: int,
        max_tokens: int,
        temperature: float,
        instructions: str,
        count_tokens: Callable[[str], int],
        tools: bool = True,
        logprobs: bool = False,
        self_check: bool = False,
    ) -> None:
        """Build the engine and its one HTTP client.

        `timeout` bounds a whole call in seconds, retries included. A
        `base_url` of None means OpenAI's own API. `count_tokens` estimates
        usage when the server reports none. `tools` offers the model the
        hand-off tool; `logprobs` asks for token probabilities (not every
        server supports either).
        """
        self.model = model
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._instructions = instructions
        self._count_tokens = count_tokens
        self._tools = tools
        self._logprobs = logprobs
        self._self_check = self_check
        # The SDK's aiohttp transport: half the CPU of its default httpx one
        # per streamed answer here (docs/performance.md).
        http_client = openai.DefaultAioHttpClient(
            event_hooks={"request": [self._on_request], "response": [self._on_response]}
        )
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            timeout=openai.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            max_retries=max_retries,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: BotRequest) -> AsyncIterator[StreamEvent]:
        messages = build_messages(request, self._instructions)
        # One deadline for the whole reply, the request and every chunk. A
        # timeout scope left open across `yield` would fire in whatever the
        # consumer happens to be doing between chunks, so the request has a
        # scope of its own and the chunks share one timer (_StreamDeadline).
        deadline = asyncio.get_running_loop().time() + self._timeout
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": self._max_tokens,
            "temperature": self._temperature,
            **self._signal_options(),
        }
        async with self._guarded(deadline):
            # The SDK's documented call for a body sent as is: `create()` would
            # walk the whole prompt to convert types it does not contain, and
            # build a typed object per chunk; together a third of the server's
            # time per answer. Retries, auth, errors and the SSE decoding are
            # the SDK's as before; chunks come as the decoded JSON.
            chunks = await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                options={"security": {"bearer_auth": True}},
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )

        reply = _Reply(model=self.model)
        reading = _StreamDeadline(deadline)
        try:
            while (chunk := await _next_chunk(chunks, reading)) is not None:
                text = reply.absorb(chunk)
                if text:
                    yield TextDelta(text)
        finally:
            reading.cancel()
            await chunks.close()
        if text := reply.finish():
            yield TextDelta(text)

        yield self._completed(request, messages, reply)

    async def summarize(self, previous_summary: str, turns: list[Turn]) -> str:
        if not turns:
            return previous_summary

        deadline = asyncio.get_running_loop().time() + self._timeout
        async with self._guarded(deadline):
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=_as_params(build_summary_messages(previous_summary, turns)),
                max_tokens=SUMMARY_MAX_TOKENS,
                temperature=self._temperature,
            )

        if not completion.choices:
            logger.warning("LLM summary came back with no choices")
            raise EngineError("upstream", "no choices in the summary reply")
        choice = completion.choices[0]
        if choice.finish_reason == "content_filter":
            logger.warning("LLM refused to summarize (content filter)")
            raise EngineError("refused", "content filter")
        return (choice.message.content or "").strip()

    async def self_check(
        self, question: str, answer: str, articles: list[RetrievedArticle]
    ) -> float | None:
        """Ask the model whether its answer is supported; None when unsure.

        A failed check is no signal rather than a failed answer: the answer
        itself already passed the other checks.
        """
        if not self._self_check:
            return None
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with self._guarded(deadline):
                completion = await self._client.chat.completions.create(
                    model=self.model,
                    messages=_as_params(
                        build_self_check_messages(question, answer, articles)
                    ),
                    max_tokens=SELF_CHECK_MAX_TOKENS,
                    temperature=0,
                )
        except EngineError as error:
            logger.warning("LLM self-check failed (%s)", error.kind)
            return None
        if not completion.choices:
            return None
        return parse_self_check(completion.choices[0].message.content or "")

    @asynccontextmanager
    async def _guarded(self, deadline: float) -> AsyncIterator[None]:
        """Bound one SDK call by `deadline` and translate its failures."""
        attempts = _Attempts()
        token = _current_attempts.set(attempts)
        try:
            async with asyncio.timeout_at(deadline):
                yield
        except TimeoutError as exc:
            raise _deadline_error(attempts) from exc
        except openai.OpenAIError as exc:
            raise _request_error(exc) from exc
        finally:
            _current_attempts.reset(token)

    def _signal_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self._tools:
            options["tools"] = [HANDOFF_TOOL]
        if self._logprobs:
            options["logprobs"] = True
        return options

    def _completed(
        self, request: BotRequest, messages: list[Message], reply: _Reply
    ) -> Completed:
        if reply.finish_reason is None and reply.handoff_arguments is None:
            logger.warning("LLM stream ended without a finish reason")
            raise EngineError("stream_cut", "stream ended without a finish reason")
        if reply.finish_reason == "content_filter":
            logger.warning("LLM refused to answer (content filter)")
            raise EngineError("refused", "content filter")
        if reply.finish_reason == "length":
            logger.info("LLM answer cut at max_tokens=%d", self._max_tokens)

        raw = "".join(reply.parts)
        text, sources = parse_citations(raw, {a.id for a in request.articles})
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            # An estimate: the chat template adds a few tokens per message.
            prompt_tokens = self._count_tokens(
                "\n".join(m["content"] for m in messages)
            )
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = self._count_tokens(raw)

        return Completed(
            text=text,
            sources=sources,
            model=reply.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=reply.finish_reason or "tool_calls",
            # The rules forbid citing when the articles hold no answer, so an
            # answer that cites nothing is not grounded in the help centre.
            answered=bool(sources),
            handoff=_handoff_reason(reply.handoff_arguments),
            logprob_confidence=(
                math.exp(sum(reply.logprobs) / len(reply.logprobs))
                if reply.logprobs
                else None
            ),
        )

    async def _on_request(self, request: object) -> None:
        attempts = _current_attempts.get()
        if attempts is None:
            return
        attempts.count += 1
        if attempts.count > 1:
            logger.warning(
                "Retrying LLM request, attempt %d of %d (previous answer: %s)",
                attempts.count,
                self._max_retries + 1,
                attempts.last_status or "none",
            )
        attempts.last_status = None

    async def _on_response(self, response: _HttpResponse) -> None:
        attempts = _current_attempts.get()
        if attempts is not None:
            attempts.last_status = response.status_code


class _StreamDeadline:
    """The deadline of a streamed reply, one timer for all its chunks.

    An `asyncio.timeout_at` per chunk costs a timer per chunk, a tenth of
    the model call's CPU here. This timer cancels the reading task only
    while it waits for a chunk; one that fires between chunks makes the
    next read fail at once.
    """

    def __init__(self, deadline: float) -> None:
        self._task = asyncio.current_task()
        self._waiting = False
        self._cancelling = 0
        self.expired = False
        self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if self._waiting and self._task is not None:
            self._task.cancel()

    def cancel(self) -> None:
        self._timer.cancel()

    async def next(self, chunks: ChunkStream) -> object | None:
        if self.expired:
            raise TimeoutError
        if self._task is not None:
            self._cancelling = self._task.cancelling()
        self._waiting = True
        try:
            return await anext(chunks, None)
        except asyncio.CancelledError:
            # Ours, unless the task was also cancelled from outside.
            if (
                self.expired
                and self._task is not None
                and self._task.uncancel() <= self._cancelling
            ):
                raise TimeoutError from None
            raise
        finally:
            self._waiting = False


async def _next_chunk(chunks: ChunkStream, deadline: _StreamDeadline) -> object | None:
    """The next chunk of an open stream, or None at its end."""
    try:
        return await deadline.next(chunks)
    except TimeoutError as exc:
        logger.warning("LLM stream passed its deadline")
        raise EngineError("timeout", "deadline passed mid-stream") from exc
    except openai.APITimeoutError as exc:
        logger.warning("LLM stream stalled past the read timeout")
        raise EngineError("timeout", "read timeout mid-stream") from exc
    except openai.APIConnectionError as exc:
        logger.warning("LLM stream cut: %s", _describe(exc))
        raise EngineError("stream_cut", _describe(exc)) from exc
    except (openai.OpenAIError, ValueError) as exc:
        # An error event inside the stream, or a chunk that is not JSON.
        logger.warning("LLM stream failed: %s", _describe(exc))
        raise EngineError("upstream", _describe(exc)) from exc


def _handoff_reason(arguments: str | None) -> str | None:
    """The reason from a hand-off call's JSON arguments; "" if unreadable."""
    if arguments is None:
        return None
    try:
        reason = json.loads(arguments or "{}").get("reason", "")
    except (ValueError, AttributeError):
        return ""
    return str(reason)[:200]


def _request_error(exc: openai.OpenAIError) -> EngineError:
    kind: ErrorKind
    if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
        kind = "timeout"
    elif isinstance(exc, openai.RateLimitError):
        kind = "rate_limited"
    else:
        kind = "upstream"
    logger.warning("LLM request failed (%s): %s", kind, _describe(exc))
    return EngineError(kind, _describe(exc))


def _refused(exc: BaseException) -> bool:
    """Whether the server refused the connection, whatever the error says.

    The aiohttp transport reports a refused connection as a connect timeout;
    the cause it keeps tells the truth.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _deadline_error(attempts: _Attempts) -> EngineError:
    # Running out of time while the SDK waits to retry a 429 or a 5xx says
    # more about the server than about slowness, so report that instead.
    kind: ErrorKind = "timeout"
    status = attempts.last_status
    if status == 429:
        kind = "rate_limited"
    elif status is not None and status >= 500:
        kind = "upstream"
    logger.warning(
        "LLM request passed its deadline after %d attempt(s) (%s, last answer: %s)",
        attempts.count,
        kind,
        status or "none",
    )
    return EngineError(kind, f"deadline passed after {attempts.count} attempt(s)")


def _describe(exc: Exception) -> str:
    """Name a failure without its message, which may quote the conversation."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    cause = exc.__cause__
    if cause is not None:
        return f"{type(exc).__name__} ({type(cause).__name__})"
    return type(exc).__name__


def _as_params(messages: list[Message]) -> list[ChatCompletionMessageParam]:
    # The prompt module builds plain dicts whose roles are all valid chat roles;
    # the SDK's TypedDicts add nothing at runtime.
    return cast(list[ChatCompletionMessageParam], messages)
