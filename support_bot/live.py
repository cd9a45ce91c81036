"""Live events to the sockets of a conversation, sent only after commit.

Live events are the fast path. A socket that misses one (a channel layer hiccup,
a reconnect) still gets the message from the database through `seq` replay, so
nothing here needs to be reliable for correctness.
"""

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

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
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        # Losing a live event costs latency, not data: log and move on.
        logger.warning(
            "Live event %s to %s was not sent", event.get("type"), group, exc_info=True
        )


def send_after_commit(group: str, event: dict[str, Any]) -> None:
    """Send `event` to `group` once the current transaction commits."""
    transaction.on_commit(lambda: send_now(group, event))


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
