"""The bot's settings as admins set them, falling back to the environment.

Admins edit one `BotSettings` row; until it exists, every value comes from
settings.py (BOT_NAME, LLM_MODEL, CONFIDENCE_THRESHOLD, ...). Each process
keeps a copy for at most `CACHE_SECONDS`, so an edit reaches every process
within about a second and an answer usually costs no query.
"""

import threading
import time
from dataclasses import dataclass
from typing import Literal, cast

from django.conf import settings

from knowledge.models import BotSettings
from support_bot.db import db_async

CACHE_SECONDS = 1.0

ReviewMode = Literal["autopilot", "supervised", "copilot"]


@dataclass(frozen=True)
class BotConfig:
    name: str
    # May contain {name}; `instructions` fills it in.
    persona: str
    greeting: str
    model: str
    temperature: float
    max_answer_tokens: int
    memory_token_budget: int
    confidence_threshold: float
    review_mode: ReviewMode

    @property
    def instructions(self) -> str:
        """The persona with the bot's name filled in, for the system prompt."""
        return self.persona.format(name=self.name)


_cached: tuple[float, BotConfig] | None = None
_lock = threading.Lock()


def get_bot_config() -> BotConfig:
    """The current settings. Sync; safe to call from the database thread pool."""
    global _cached
    cached = _fresh()
    if cached is not None:
        return cached
    with _lock:
        cached = _fresh()
        if cached is None:
            cached = _load()
            _cached = (time.monotonic(), cached)
        return cached


async def aget_bot_config() -> BotConfig:
    """`get_bot_config` for async code: no thread hop while the copy is fresh."""
    return _fresh() or await db_async(get_bot_config)()


def forget_cached_config() -> None:
    """Make this process's next `get_bot_config()` read the database."""
    global _cached
    _cached = None


def _fresh() -> BotConfig | None:
    cached = _cached
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    return None


def _load() -> BotConfig:
    row = BotSettings.objects.filter(pk=1).first()
    if row is None:
        return env_bot_config()
    return BotConfig(
        name=row.name,
        persona=row.persona,
        greeting=row.greeting,
        model=row.model,
        temperature=row.temperature,
        max_answer_tokens=row.max_answer_tokens,
        memory_token_budget=row.memory_token_budget,
        confidence_threshold=row.confidence_threshold,
        review_mode=cast(ReviewMode, row.review_mode),
    )


def env_bot_config() -> BotConfig:
    """The settings from the environment alone, as before anyone edits them."""
    return BotConfig(
        name=settings.BOT_NAME,
        persona=settings.BOT_INSTRUCTIONS,
        greeting=settings.BOT_GREETING,
        model=settings.LLM_MODEL,
        temperature=settings.LLM_TEMPERATURE,
        max_answer_tokens=settings.LLM_MAX_TOKENS,
        memory_token_budget=settings.MEMORY_TOKEN_BUDGET,
        confidence_threshold=settings.CONFIDENCE_THRESHOLD,
        review_mode="autopilot",
    )
