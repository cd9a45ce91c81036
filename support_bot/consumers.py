"""The base of our websocket consumers."""

import json
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What reaching Redis raises when it is down or restarting.
LAYER_DOWN = (RedisError, OSError)
# "Try Again Later" (RFC 6455's registry).
LAYER_DOWN_CLOSE_CODE = 1013


class PooledConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """A consumer whose database work all runs on the pool of `support_bot.db`.

    Channels closes stale database connections before every event a consumer
    handles, with a hop to its one shared thread: for a streamed answer that is
    a thread hop per frame, on a thread whose connection these consumers never
    use. The pool's threads check their own connections around each call, so
    the hop is left out here.

    A channel-layer event that fails (the database is unreachable while a
    gap is filled, say) is logged and the socket stays open: a live event is
    only the fast path, and what it carried is stored and replayed. Letting
    the failure out would close the socket, and every tab of the conversation
    would reconnect at once.
    """

    # Set once the socket is gone; later sends are dropped.
    closed = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the consumer; while the channel layer cannot be reached, the
        socket is accepted and closed at once with 1013 (try again later).

        Every consumer subscribes to the layer before it sees the handshake,
        and on Redis that fails while Redis is down or restarting. Uvicorn
        would answer that with a 500 and a traceback; 1013 tells the client
        what happened, and the widget and the console reconnect with backoff.
        """
        try:
            await super().__call__(scope, receive, send)
        except LAYER_DOWN as error:
            if getattr(self, "channel_receive", None) is not None:
                raise  # the layer failed later on: not a refusal
            logger.warning(
                "Socket refused: the channel layer is unreachable (%s)", error
            )
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send(
                    {
                        "type": "websocket.close",
                        "code": LAYER_DOWN_CLOSE_CODE,
                        "reason": "Live service unavailable; try again shortly.",
                    }
                )

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.closed = True
        await super().websocket_disconnect(message)

    async def leave_groups(self, groups: list[str]) -> None:
        """Leave `groups` as the socket closes. While Redis is away a group's
        unsubscribe fails: the layer has forgotten this socket all the same,
        and unsubscribes the group when it is back (support_bot.channel_layer)."""
        for group in groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except LAYER_DOWN as error:
                logger.info(
                    "Left %s while the channel layer was away (%s)", group, error
                )

    async def send_json(self, content: dict[str, Any]) -> None:
        """Send a frame, unless the socket has gone away meanwhile.

        An answer or a live event can finish after its socket closed: the
        client left (uvicorn raises ClientDisconnected, an OSError) or the
        server closed it, say for missed keepalive pings (then the ASGI
        server refuses the send with a RuntimeError). Either way the frame
        has nowhere to go, and what it carried is stored and replayed.
        """
        if self.closed:
            return
        try:
            await self.send(text_data=_dumps(content))
        except (OSError, RuntimeError):
            logger.info("A frame for a closed socket was dropped")
            self.closed = True

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"].startswith("websocket."):
            await handler(message)
            return
        try:
            await handler(message)
        except Exception:
            logger.exception(
                "Live event failed; the socket stays open",
                extra={"event": message["type"]},
            )


def _dumps(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))
