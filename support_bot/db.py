"""Running ORM code from async code without one shared thread.

Channels' `database_sync_to_async` runs every call on a single thread
(thread_sensitive=True), so all database work of a web process queues behind
one connection: measured here at ten times slower under load. These helpers run
it on a pool of threads instead, each thread keeping its own connection.

Precondition for callers: a function passed here must do all its work in one
call (open and finish its own transaction); it must not rely on running on the
same thread as another call.

Each call is a plain `run_in_executor` with the caller's context variables,
not asgiref's `SyncToAsync`, whose bookkeeping for thread-sensitive calls cost
more than the queries of a short call. Connections are tidied before each call
as Django tidies them around a request, except that the health check
(CONN_HEALTH_CHECKS, a `SELECT 1` round trip) runs at most once every
HEALTH_CHECK_INTERVAL seconds per connection instead of before every call.
A connection that raised a database error is checked before its next use, as
in Django, so a restarted PostgreSQL costs no failed call.
"""

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_calling = threading.local()

HEALTH_CHECK_INTERVAL = 1.0


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.DB_THREADS, thread_name_prefix="db"
            )
        return _executor


def db_async(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Wrap a sync ORM function so async code can await it on the DB pool."""

    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()

        def on_pool_thread() -> R:
            _calling.loop = loop
            try:
                tidy_connections()
                return func(*args, **kwargs)
            finally:
                _calling.loop = None

        context = contextvars.copy_context()
        return await loop.run_in_executor(
            _get_executor(), functools.partial(context.run, on_pool_thread)
        )

    run.__name__ = getattr(func, "__name__", "db_call")
    run.__doc__ = func.__doc__
    return run


def tidy_connections() -> None:
    """Django's `close_old_connections`, health-checking each connection at
    most once every HEALTH_CHECK_INTERVAL seconds."""
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        checked_at: float = getattr(connection, "checked_at", -HEALTH_CHECK_INTERVAL)
        recently_checked = (
            getattr(connection, "health_check_done", False)
            and not connection.errors_occurred
            and now - checked_at < HEALTH_CHECK_INTERVAL
        )
        # Closes a connection past CONN_MAX_AGE, left in a transaction, or
        # broken by an error, and marks it for a health check before its next
        # query.
        connection.close_if_unusable_or_obsolete()
        if recently_checked and connection.connection is not None:
            connection.health_check_done = True  # type: ignore[attr-defined]
        else:
            connection.checked_at = now  # type: ignore[attr-defined]


def calling_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that awaits this pool thread's call, if it is one."""
    loop: asyncio.AbstractEventLoop | None = getattr(_calling, "loop", None)
    return loop


def close_pool() -> None:
    """Close every pool thread's connections and stop the pool (tests, shutdown).

    Connections live in each thread's local storage, so each thread must close
    its own: the barrier makes every thread take exactly one closing call.
    """
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    workers = executor._max_workers
    barrier = threading.Barrier(workers, timeout=10)

    def close_here() -> None:
        barrier.wait()
        connections.close_all()

    for future in [executor.submit(close_here) for _ in range(workers)]:
        future.result()
    executor.shutdown(wait=True)
