"""/healthz says the process is up; /readyz checks what serving needs, quickly."""

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from support_bot import health
from support_bot.celery import app as celery_app
from tests.test_celery_worker import _started_worker

# Every check has CHECK_TIMEOUT; they run at once, so this bounds the whole.
DEADLINE = health.CHECK_TIMEOUT + 1.5


def get_ready(client: Client) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    return response.status_code, response.json(), elapsed


def test_healthz_answers_without_any_io(
    db: None, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.redis
def test_readyz_is_ok_with_database_and_redis_up(db: None, redis_url: str) -> None:
    status, body, _ = get_ready(Client())

    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["celery"] == {
        "status": "skipped",
        "detail": "tasks run inline",
    }


def test_readyz_skips_redis_when_none_is_configured(db: None, settings: Any) -> None:
    settings.REDIS_URL = ""

    status, body, _ = get_ready(Client())

    assert status == 200, body
    assert body["checks"]["redis"]["status"] == "skipped"


@pytest.fixture
def broken_database(
    monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any
) -> Iterator[None]:
    """Point the check at a copy of the database settings that cannot connect.

    Without the `db` fixture: a test database case refuses aliases it was not
    set up with, which would fail the check for the wrong reason.
    """
    good = connections.settings["default"]
    if "sqlite" in good["ENGINE"]:
        bad = {**good, "NAME": "/nonexistent/folder/db.sqlite3"}
    else:
        bad = {**good, "HOST": "127.0.0.1", "PORT": "1"}
    monkeypatch.setitem(connections.settings, "readyz_broken", bad)
    monkeypatch.setattr(health, "DATABASE_ALIAS", "readyz_broken")
    with django_db_blocker.unblock():
        yield


def test_readyz_is_503_when_the_database_is_unreachable(
    settings: Any, broken_database: None
) -> None:
    settings.REDIS_URL = ""

    status, body, elapsed = get_ready(Client())

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "fail"
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert elapsed < DEADLINE


def test_readyz_is_503_when_redis_refuses(db: None, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    status, body, elapsed = get_ready(Client())

    assert status == 503
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"] == {
        "status": "fail",
        "error": "ConnectionError",
        "ms": body["checks"]["redis"]["ms"],
    }
    assert elapsed < DEADLINE


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_readyz_gives_up_on_a_silent_redis_in_time(
    db: None, settings: Any, silent_server: int
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_server}/0"

    status, body, elapsed = get_ready(Client())

    assert status == 503
    assert body["checks"]["redis"]["status"] == "fail"
    assert elapsed < DEADLINE


@pytest.mark.redis
def test_readyz_is_503_when_no_worker_answers(db: None, redis_url: str) -> None:
    celery_app.conf.task_always_eager = False

    status, body, elapsed = get_ready(Client())

    assert status == 503
    assert body["checks"]["celery"]["status"] == "fail"
    assert body["checks"]["celery"]["error"] == "no worker answered"
    assert elapsed < DEADLINE


@pytest.mark.redis
@pytest.mark.worker
def test_readyz_is_ok_once_a_worker_answers(
    transactional_db: None, redis_url: str, settings: Any
) -> None:
    client = Client()
    with _started_worker(settings):
        deadline = time.monotonic() + 30
        while True:
            status, body, _ = get_ready(client)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)

    assert status == 200, body
    assert body["checks"]["celery"]["status"] == "ok"
