"""Choosing the answering engine from settings."""

import asyncio
import functools
import weakref

from django.conf import settings

from .embeddings import count_tokens
from .engine import BotEngine
from .offline import OfflineEngine

# The SDK client's connection pool belongs to the event loop that opened it, so
# an LLM engine is kept per loop (and per configuration, for tests that change
# settings). A loop that ends takes its engine with it.
Config = tuple[object, ...]
_per_loop: (
    "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Config, BotEngine]]"
)
_per_loop = weakref.WeakKeyDictionary()


def get_engine() -> BotEngine:
    """The engine for the current settings. Call it from async code."""
    if not settings.OPENAI_API_KEY:
        return _offline(settings.OFFLINE_STREAM_DELAY_MS)

    config = (
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.LLM_MODEL,
        settings.LLM_TIMEOUT,
        settings.LLM_MAX_RETRIES,
        settings.LLM_MAX_TOKENS,
        settings.LLM_TEMPERATURE,
        settings.BOT_INSTRUCTIONS,
    )
    engines = _per_loop.setdefault(asyncio.get_running_loop(), {})
    if config not in engines:
        from .openai_engine import OpenAIEngine

        engines[config] = OpenAIEngine(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=settings.LLM_MODEL,
            timeout=settings.LLM_TIMEOUT,
            max_retries=settings.LLM_MAX_RETRIES,
            max_tokens=settings.LLM_MAX_TOKENS,
            temperature=settings.LLM_TEMPERATURE,
            instructions=settings.BOT_INSTRUCTIONS.format(name=settings.BOT_NAME),
            count_tokens=count_tokens,
        )
    return engines[config]


@functools.cache
def _offline(delay_ms: int) -> BotEngine:
    return OfflineEngine(word_delay=delay_ms / 1000)
