"""A count of the SQL statements a server process sends, readable over HTTP.

pg_stat_statements is not loaded on our PostgreSQL, and pg_stat_database's
counters reach the view only when a backend flushes them (up to ten seconds
after it goes idle), so the count is taken in the server process instead:
every statement Django executes on any connection passes through an execute
wrapper that adds one. Transaction control is not counted: psycopg sends BEGIN
and Django COMMIT without going through a cursor, so each transaction costs
two round trips more than it counts. The wrapper costs about a microsecond a
statement.

`with_stats(app)` answers `GET /__bench/stats` with `{"queries": N}` and hands
every other request to `app` unchanged.
"""

import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from django.db.backends.signals import connection_created

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATS_PATH = "/__bench/stats"

# The DB pool's threads execute statements at the same time.
_lock = threading.Lock()
_executed = 0


def _count(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
) -> Any:
    global _executed
    with _lock:
        _executed += 1
    return execute(sql, params, many, context)


def _install(sender: Any, connection: "BaseDatabaseWrapper", **kwargs: Any) -> None:
    # connect() runs again after a health check drops a connection.
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _count)


connection_created.connect(_install)


def with_stats(app: ASGIApp) -> ASGIApp:
    """`app`, answering the stats path itself."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            body = json.dumps({"queries": _executed}).encode()
            headers = [(b"content-type", b"application/json")]
            await send(
                {"type": "http.response.start", "status": 200, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped
