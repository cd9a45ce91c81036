"""The base of our websocket consumers."""

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer


class PooledConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """A consumer whose database work all runs on the pool of `support_bot.db`.

    Channels closes stale database connections before every event a consumer
    handles, with a hop to its one shared thread: for a streamed answer that is
    a thread hop per frame, on a thread whose connection these consumers never
    use. The pool's threads check their own connections around each call, so
    the hop is left out here.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
