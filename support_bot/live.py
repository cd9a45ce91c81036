"""Live events to the sockets of a conversation, sent only after commit.

Live events are the fast path. A socket that misses one (a channel layer hiccup,
a reconnect) still gets the message from the database through `seq` replay, so
nothing here needs to be reliable for correctness.
"""

import asyncio
import logging
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from support_bot.db import calling_loop

logger = logging.getLogger(__name__)


def _hex(value: Any) -> str:
    # A UUID object and its string form must name the same group.
    return uuid.UUID(str(value)).hex


def conversation_group(conversation_id: Any) -> str:
    return f"conversation.{_hex(conversation_id)}"


def visitor_group(visitor_id: Any) -> str:
    return f"visitor.{_hex(visitor_id)}"


def conversation_agents_group(conversation_id: Any) -> str:
    """Agents' sockets watching one conversation (notes never reach customers)."""
    return f"agents.conversation.{_hex(conversation_id)}"


def send_now(group: str, event: dict[str, Any]) -> None:
    """Send `event` from sync code.

    On a thread of the database pool the event is handed to the event loop
    that awaits the call, and the thread goes on: waiting for the publish
    would hold a database thread for a round trip to Redis. Elsewhere (admin
    views, Celery tasks) this waits for the publish.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    loop = calling_loop()
    if loop is not None:
        loop.call_soon_threadsafe(_queue, group, event)
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        # Losing a live event costs latency, not data: log and move on.
        logger.warning(
            "Live event %s to %s was not sent", event.get("type"), group, exc_info=True
        )


# Events handed over by database threads, per event loop and group, sent one
# after another so that a group's events keep the order of their commits.
_Outbox = dict[str, deque[dict[str, Any]]]
_outboxes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox]" = (
    weakref.WeakKeyDictionary()
)
_senders: set["asyncio.Task[None]"] = set()


def _queue(group: str, event: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    outbox = _outboxes.setdefault(loop, {})
    waiting = outbox.get(group)
    if waiting is not None:
        waiting.append(event)
        return
    outbox[group] = deque([event])
    send_in_background(_send_queued(outbox, group))


def send_in_background(sending: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
    """Run `sending` on its own task, which `flush` waits for."""
    task = asyncio.get_running_loop().create_task(sending)
    _senders.add(task)
    task.add_done_callback(_senders.discard)
    return task


async def _send_queued(outbox: _Outbox, group: str) -> None:
    waiting = outbox[group]
    try:
        while waiting:
            await asend(group, waiting.popleft())
    finally:
        del outbox[group]


async def flush() -> None:
    """Wait until the events handed to this loop by database threads, and
    those sent in the background, are sent (before a loop of its own ends, as
    in a Celery task)."""
    loop = asyncio.get_running_loop()
    while pending := [t for t in _senders if t.get_loop() is loop]:
        await asyncio.gather(*pending, return_exceptions=True)


# Answers being written, by conversation group: told when a socket joins it,
# so that they send the newcomer what was written so far.
_join_watchers: dict[str, set[Callable[[], None]]] = {}


def watch_joins(group: str, callback: Callable[[], None]) -> None:
    _join_watchers.setdefault(group, set()).add(callback)


def unwatch_joins(group: str, callback: Callable[[], None]) -> None:
    watchers = _join_watchers.get(group)
    if watchers is not None:
        watchers.discard(callback)
        if not watchers:
            del _join_watchers[group]


def joined(group: str) -> None:
    """A socket joined `group`, on this process or (through the layer's
    marker) another one."""
    for callback in list(_join_watchers.get(group, ())):
        callback()


def socket_joined(layer: Any, group: str) -> None:
    """A socket of this process joined `group`. A layer that announces joins
    to every process (the Redis one) calls `joined` itself, here too."""
    if not getattr(layer, "announces_joins", False):
        joined(group)


def tell_when_resumed(layer: Any, channel: str) -> None:
    """Have `channel` receive `layer.resumed` when the layer is back after
    losing Redis, where the layer can tell (the in-process one never loses
    anything)."""
    tell = getattr(layer, "tell_when_resumed", None)
    if tell is not None:
        tell(channel)


def forget(layer: Any, channel: str) -> None:
    forget_channel = getattr(layer, "forget", None)
    if forget_channel is not None:
        forget_channel(channel)


def send_after_commit(group: str, event: dict[str, Any]) -> None:
    """Send `event` to `group` once the current transaction commits."""
    transaction.on_commit(lambda: send_now(group, event))


def others_listening(group: str, channel: str | None) -> bool:
    """Whether a socket other than `channel` may be in `group`, so that an
    ephemeral event is worth publishing; yes when the layer cannot tell."""
    layer = get_channel_layer()
    if layer is None:
        return False
    check = getattr(layer, "others_listening", None)
    if check is not None:
        return bool(check(group, channel))
    if isinstance(layer, InMemoryChannelLayer):
        return bool(set(layer.groups.get(group, {})) - {channel})
    return True


async def asend(group: str, event: dict[str, Any]) -> None:
    """Send an ephemeral event (typing, streamed text) that has no row behind it."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, event)
    except Exception:
        logger.warning(
            "Live event %s to %s was not sent", event.get("type"), group, exc_info=True
        )
