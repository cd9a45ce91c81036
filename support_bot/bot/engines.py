"""Choosing the answering engine from settings."""

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from django.conf import settings

from .config import BotConfig, env_bot_config
from .embeddings import count_tokens
from .engine import BotEngine
from .offline import OfflineEngine

if TYPE_CHECKING:
    from .openai_engine import OpenAIEngine

# The SDK client's connection pool belongs to the event loop that opened it, so
# an LLM engine is kept per loop (and per configuration, for tests that change
# settings). A loop that ends takes its engine with it.
Config = tuple[object, ...]
P = ParamSpec("P")
R = TypeVar("R")
_per_loop: (
    "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Config, OpenAIEngine]]"
)
_per_loop = weakref.WeakKeyDictionary()


def get_engine(bot: BotConfig | None = None) -> BotEngine:
    """The engine for the current settings and bot settings record.

    Call it from async code; `bot` defaults to the environment's values.
    """
    if not settings.OPENAI_API_KEY:
        return _offline(settings.OFFLINE_STREAM_DELAY_MS)

    bot = bot or env_bot_config()
    config = (
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        bot.model,
        settings.LLM_TIMEOUT,
        settings.LLM_MAX_RETRIES,
        bot.max_answer_tokens,
        bot.temperature,
        bot.instructions,
        settings.LLM_TOOLS,
        settings.LLM_LOGPROBS,
        settings.LLM_SELF_CHECK,
    )
    engines = _per_loop.setdefault(asyncio.get_running_loop(), {})
    if config not in engines:
        from .openai_engine import OpenAIEngine

        engines[config] = OpenAIEngine(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=bot.model,
            timeout=settings.LLM_TIMEOUT,
            max_retries=settings.LLM_MAX_RETRIES,
            max_tokens=bot.max_answer_tokens,
            temperature=bot.temperature,
            instructions=bot.instructions,
            count_tokens=count_tokens,
            tools=settings.LLM_TOOLS,
            logprobs=settings.LLM_LOGPROBS,
            self_check=settings.LLM_SELF_CHECK,
        )
    return engines[config]


@functools.cache
def _offline(delay_ms: int) -> BotEngine:
    return OfflineEngine(word_delay=delay_ms / 1000)


def run_sync(func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `func` from sync code (a Celery task, an admin view) to the end.

    It runs on an event loop of its own, whose engines are closed when it is
    done: an engine's HTTP sessions belong to one loop, and one left open
    when its loop goes away is a leak the HTTP library complains about.
    """

    async def once() -> R:
        try:
            return await func(*args, **kwargs)
        finally:
            await close_loop_engines()

    return asyncio.run(once())


async def close_loop_engines() -> None:
    """Close the engines of the running loop."""
    engines = _per_loop.pop(asyncio.get_running_loop(), {})
    for engine in engines.values():
        await engine.aclose()
