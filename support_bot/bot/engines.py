"""Choosing the answering engine from settings."""

import functools

from django.conf import settings

from .embeddings import count_tokens
from .engine import BotEngine
from .offline import OfflineEngine


def get_engine() -> BotEngine:
    return _engine_for(
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.LLM_MODEL,
        settings.LLM_TIMEOUT,
        settings.LLM_MAX_RETRIES,
        settings.OFFLINE_STREAM_DELAY_MS,
    )


@functools.cache
def _engine_for(
    api_key: str,
    base_url: str | None,
    model: str,
    timeout: float,
    max_retries: int,
    offline_delay_ms: int,
) -> BotEngine:
    # Cached per configuration: the SDK client keeps a connection pool that is
    # worth reusing, and tests that change settings get a fresh engine.
    if not api_key:
        return OfflineEngine(word_delay=offline_delay_ms / 1000)

    from .openai_engine import OpenAIEngine

    return OpenAIEngine(
        api_key=api_key,
        base_url=base_url,
        model=model,
        timeout=timeout,
        max_retries=max_retries,
        max_tokens=settings.LLM_MAX_TOKENS,
        temperature=settings.LLM_TEMPERATURE,
        instructions=settings.BOT_INSTRUCTIONS.format(name=settings.BOT_NAME),
        count_tokens=count_tokens,
    )
