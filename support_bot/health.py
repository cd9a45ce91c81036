"""Views for whoever watches the service: /healthz, /readyz and /metrics.

/healthz says the process answers and does no I/O, so a slow database never
gets a healthy process restarted. /readyz checks what serving a customer
needs; every check has a deadline, so a dead dependency makes it answer 503
in about CHECK_TIMEOUT seconds, never hang.
"""

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis.asyncio
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder

from support_bot import metrics as metrics_api

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
# Below CHECK_TIMEOUT, so a slow worker reads as "no worker answered" rather
# than as a timeout of the whole check.
CELERY_PING_TIMEOUT = 1.0
# The database alias /readyz checks; tests point it at a broken one.
DATABASE_ALIAS = "default"


class CheckFailed(Exception):
    """A dependency answered, but not as serving needs."""


# --- Checks -------------------------------------------------------------------


def _select_one() -> str:
    connection = connections[DATABASE_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # This thread serves no requests, so nothing else would close it.
        connection.close()
    return "ok"


def _ping_celery() -> str:
    from support_bot.celery import app

    # limit=1: return on the first reply instead of waiting out the timeout.
    if not app.control.ping(timeout=CELERY_PING_TIMEOUT, limit=1):
        raise CheckFailed("no worker answered")
    return "ok"


async def _ping_redis() -> str:
    client = redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=1.0
    )
    try:
        await client.ping()
    finally:
        await client.aclose()
    return "ok"


# Blocking checks run here, one at a time per check: while a check is stuck
# (a database that accepts connections but never answers) later probes wait
# for the same attempt instead of piling up threads behind it.
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
_pending: dict[str, "Future[str]"] = {}
_pending_lock = threading.Lock()


def _in_thread(name: str, check: Callable[[], str]) -> "Awaitable[str]":
    with _pending_lock:
        future = _pending.get(name)
        if future is None or future.done():
            future = _executor.submit(check)
            _pending[name] = future
    # Shielded: one probe giving up must not cancel the attempt another awaits.
    return asyncio.shield(asyncio.wrap_future(future))


async def _run(name: str, check: Awaitable[str]) -> dict[str, Any]:
    started = time.monotonic()
    result: dict[str, Any]
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT)
    except Exception as error:
        result = {"status": "fail", "error": _describe(error)}
    else:
        result = {"status": "ok"}
    result["ms"] = round((time.monotonic() - started) * 1000)
    _log_change(name, result)
    return result


def _describe(error: Exception) -> str:
    # The class name only: a driver's message can carry hosts and user names,
    # and /readyz answers anyone who can reach it.
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g}s"
    if isinstance(error, CheckFailed):
        return str(error)
    return type(error).__name__


_last_status: dict[str, str] = {}


def _log_change(name: str, result: dict[str, Any]) -> None:
    """Log when a check starts or stops failing, not at every probe."""
    previous = _last_status.get(name, "ok")
    _last_status[name] = result["status"]
    if result["status"] != previous:
        level = logging.WARNING if result["status"] == "fail" else logging.INFO
        logger.log(
            level,
            "Readiness check %s: %s",
            name,
            result.get("error", "recovered"),
            extra={"check": name},
        )


def _skipped(detail: str) -> "Awaitable[dict[str, Any]]":
    async def skipped() -> dict[str, Any]:
        return {"status": "skipped", "detail": detail}

    return skipped()


async def readiness() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check at once; ready when none failed."""
    from support_bot.celery import app

    names = ["database", "redis", "celery"]
    results = await asyncio.gather(
        _run("database", _in_thread("database", _select_one)),
        _run("redis", _ping_redis())
        if settings.REDIS_URL
        else _skipped("REDIS_URL is not set"),
        _skipped("tasks run inline")
        if app.conf.task_always_eager
        else _run("celery", _in_thread("celery", _ping_celery)),
    )
    checks = dict(zip(names, results, strict=True))
    return all(c["status"] != "fail" for c in checks.values()), checks


# --- Views --------------------------------------------------------------------


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    ready, checks = await readiness()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; behind METRICS_TOKEN when it is set."""
    token = settings.METRICS_TOKEN
    if token and not _bearer_matches(request, token):
        return HttpResponse(
            "A bearer token is required.\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # Prometheus' plain text format, or OpenMetrics when the scraper asks.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(metrics_api.exposition_registry())
    return HttpResponse(body, content_type=content_type)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time, so the token cannot be guessed a character at a time.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
