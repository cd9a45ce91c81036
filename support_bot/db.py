"""Running ORM code from async code without one shared thread.

Channels' `database_sync_to_async` runs every call on a single thread
(thread_sensitive=True), so all database work of a web process queues behind
one connection: measured here at ten times slower under load. These helpers run
it on a pool of threads instead, each thread keeping its own connection.

Precondition for callers: a function passed here must do all its work in one
call (open and finish its own transaction); it must not rely on running on the
same thread as another call.
"""

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_calling = threading.local()


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

        def on_pool_thread(*args: P.args, **kwargs: P.kwargs) -> R:
            _calling.loop = loop
            try:
                return func(*args, **kwargs)
            finally:
                _calling.loop = None

        call = DatabaseSyncToAsync(
            on_pool_thread, thread_sensitive=False, executor=_get_executor()
        )
        result: R = await call(*args, **kwargs)
        return result

    run.__name__ = getattr(func, "__name__", "db_call")
    run.__doc__ = func.__doc__
    return run


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
