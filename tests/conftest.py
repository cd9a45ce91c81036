"""Fixtures shared by every test.

Services: tests run against the database and Redis that DATABASE_URL and
REDIS_URL name. Without them, tests that need Redis are skipped on a laptop;
in CI (CI=true) a missing service is a failure, never a skip.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections

from conversations import replies
from knowledge import index as knowledge_index
from knowledge.models import Article
from support_bot import db
from support_bot.asgi import application
from support_bot.bot import config as bot_config
from support_bot.celery import app as celery_app

pytest_plugins = ["tests.fake_llm"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ORIGIN = "http://127.0.0.1:8000"


def require_service(name: str, reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{name} is required in CI: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


# Connections opened by the database thread pool close after each call, so
# none is left holding the test database when pytest drops it.
django_settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
if IN_CI and "postgresql" not in django_settings.DATABASES["default"]["ENGINE"]:
    raise pytest.UsageError("CI must run against PostgreSQL: set DATABASE_URL.")


@pytest.fixture(autouse=True)
def _test_settings(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Tests change settings between answers: read the bot settings every time.
    monkeypatch.setattr(bot_config, "CACHE_SECONDS", 0.0)
    monkeypatch.setattr(knowledge_index, "CACHE_SECONDS", 0.0)
    settings.OFFLINE_STREAM_DELAY_MS = 0
    settings.WIDGET_ALLOWED_ORIGINS = [ORIGIN]
    settings.OPENAI_API_KEY = ""
    # Tests that chat at machine speed; the limit has tests of its own.
    settings.WIDGET_RATE_BURST = 100
    # Tasks run inline unless a test starts a real worker.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def redis_url() -> str:
    url: str = django_settings.REDIS_URL
    if not url:
        require_service("Redis", "REDIS_URL is not set")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        require_service("Redis", f"{url} did not answer: {error}")
    return url


@pytest.fixture
def llm(fake_llm: Any, settings: Any) -> Any:
    """Answers come from the fake OpenAI-compatible server, through the SDK."""
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.base_url
    settings.LLM_MODEL = "fake-model"
    settings.LLM_TIMEOUT = 3.0
    settings.LLM_MAX_RETRIES = 1
    return fake_llm


BANK_ARTICLES = [
    (
        "How long does a new card take to arrive?",
        "A new or replacement card arrives within 3 to 5 working days after you "
        "order it in the app.",
        [
            "when will my card arrive",
            "how long does card delivery take",
            "my new card has not come yet",
        ],
    ),
    (
        "Reporting a lost or stolen card",
        "Freeze the card in the app straight away, then order a replacement from "
        "Card settings.",
        [
            "I lost my card",
            "my card was stolen",
            "someone took my wallet with my card",
        ],
    ),
    (
        "How long do transfers take?",
        "Transfers to UK and EEA accounts arrive within 1 working day; other "
        "countries take up to 5 working days.",
        [
            "how long does a transfer take",
            "when will my transfer arrive",
            "my bank transfer is slow",
        ],
    ),
    (
        "Changing your PIN",
        "You can change your PIN at any cash machine that offers PIN services.",
        ["how do I change my PIN", "I want a new PIN", "reset my card PIN"],
    ),
]


@pytest.fixture
def kb(transactional_db: None) -> dict[str, Article]:
    """A small knowledge base: four bank articles, keyed by title."""
    return {
        title: Article.objects.create(
            title=title, body=body, example_questions="\n".join(questions)
        )
        for title, body, questions in BANK_ARTICLES
    }


Connect = Callable[..., Any]


@pytest.fixture
async def connect(transactional_db: None) -> AsyncIterator[Connect]:
    """Open widget sockets through the whole ASGI stack; closes them after."""
    opened: list[WebsocketCommunicator] = []

    async def _connect(
        origin: str = ORIGIN, hello: bool = True, token: str | None = None
    ) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(
            application, "/ws/widget/", headers=[(b"origin", origin.encode())]
        )
        connected, _ = await communicator.connect()
        assert connected, "the handshake was refused"
        opened.append(communicator)
        if hello:
            await communicator.send_json_to({"type": "hello", "token": token})
            welcome = await communicator.receive_json_from()
            assert welcome["type"] == "welcome", welcome
            communicator.welcome = welcome
        return communicator

    yield _connect

    await replies.drain()
    for communicator in opened:
        await communicator.disconnect()
    # The async ORM calls of the test itself ran on asgiref's shared thread.
    await sync_to_async(connections.close_all)()
    # In a thread: closing waits on pool threads that may need this loop.
    await asyncio.to_thread(db.close_pool)

    for layer in list(channel_layers.backends.values()):
        flush = getattr(layer, "flush", None)
        if flush is not None:
            await flush()
    channel_layers.backends.clear()
