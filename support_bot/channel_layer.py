"""The Redis channel layer, with its publishes and subscriptions batched.

channels-redis' pub/sub layer sends each `group_send` as its own PUBLISH and
each `group_add` as its own SUBSCRIBE, one at a time under one lock per Redis
server, each waiting for its turn of the event loop. On a busy web process a
turn takes tens of milliseconds, and a socket joining a conversation queued
behind fifty others waited for fifty turns: measured here as more than a
second before a new conversation's first answer could start, with fifty
conversations starting at once.

Here what piles up while one batch is on its way goes out together: the
publishes as one pipeline, the subscriptions as one SUBSCRIBE, each in the
order they were asked for. A `group_send` still returns once Redis has taken
its message and a `group_add` once its SUBSCRIBE is sent, and both still raise
when Redis cannot be reached. Publishes no longer wait for subscriptions, nor
subscriptions for publishes: they use different connections.

It also tells whether a socket other than a given one may be in a group
(`others_listening`), so that an answer publishes its typing notice and
streamed text only when someone can see them; while Redis is unreachable it
logs that once, not a traceback every second; and when its pub/sub
connection comes back after a loss, it tells the sockets that asked
(`tell_when_resumed`) with a `layer.resumed` event, since whatever was
published to them in between is gone and only the database has it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from support_bot import live

logger = logging.getLogger(__name__)

# Groups whose latest publish count is kept (a few hundred bytes each).
REACHED_KEPT = 50_000

RESUMED = {"type": "layer.resumed"}
# Published to a group for each socket that joins it (and for every group
# again when the pub/sub connection is back): the processes in the group stop
# trusting the count of their latest publish, and an answer being written
# there sends its text from the start (live.joined). Never handed to a socket.
JOINED = b"support_bot.layer.joined"


class BatchingPubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """`RedisPubSubChannelLayer`, batching what waits to be sent (see above)."""

    # Every process in a group hears when a socket joins it (live.joined).
    announces_joins = True

    def _get_layer(self) -> RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = RedisPubSubLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            layer._shards = [
                _BatchingShard(shard.host, layer) for shard in layer._shards
            ]
            layer.resume_listeners = set()
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer

    def others_listening(self, group: str, channel: str | None) -> bool:
        """Whether a socket other than `channel` may be in `group`.

        In this process the layer knows its members. For other processes
        it goes by the number of them that the latest publish to the group
        reached, until a socket joins the group: its process says so
        (JOINED) and the count is unknown again. Unknown counts as yes.
        """
        layer = self._get_layer()
        group_channel = layer._get_group_channel_name(group)
        if layer.groups.get(group_channel, set()) - {channel}:
            return True
        shard: _BatchingShard = layer._get_shard(group_channel)
        elsewhere = shard.reached_elsewhere.get(group_channel)
        return elsewhere is None or elsewhere > 0

    def tell_when_resumed(self, channel: str) -> None:
        """Send `channel` a `layer.resumed` event each time the pub/sub
        connection is back after it was lost."""
        self._get_layer().resume_listeners.add(channel)

    def forget(self, channel: str) -> None:
        self._get_layer().resume_listeners.discard(channel)


_Send = Callable[[list[Any]], Awaitable[None]]


def _is_group(channel: str) -> bool:
    """Whether a pub/sub channel is a group's (the library's naming)."""
    return "__group__" in channel


class _Batches:
    """Items waiting to be sent, each with the future its caller awaits."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Any, asyncio.Future[None]]] = []
        self.sender: asyncio.Task[None] | None = None

    async def add(self, item: Any, send: _Send) -> None:
        """Queue `item` and wait until `send`, given it and what piled up
        with it, has sent it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, done))
        if self.sender is None:
            self.sender = asyncio.create_task(self._run(send))
        await done

    def put(self, item: Any, send: _Send) -> None:
        """Queue `item` like `add`, with nobody waiting for it: a failure
        to send it is dropped."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.waiting.append((item, done))
        if self.sender is None:
            self.sender = asyncio.create_task(self._run(send))

    async def wait(self) -> None:
        if self.sender is not None:
            await asyncio.gather(self.sender, return_exceptions=True)

    async def _run(self, send: _Send) -> None:
        batch: list[tuple[Any, asyncio.Future[None]]] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    await send([item for item, _ in batch])
                except Exception as error:
                    _settle(batch, error)
                else:
                    _settle(batch, None)
                batch = []
        finally:
            # Cancelled (the loop is closing): nobody waits for ever.
            for _, done in batch + self.waiting:
                done.cancel()
            self.waiting = []
            self.sender = None


def _settle(
    batch: list[tuple[Any, "asyncio.Future[None]"]], error: Exception | None
) -> None:
    for _, done in batch:
        if done.done():
            continue  # its caller was cancelled
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class _BatchingShard(RedisSingleShardConnection):  # type: ignore[misc]
    def __init__(self, host: dict[str, Any], channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._publishes = _Batches()
        self._subscribes = _Batches()
        # Per group channel, how many other processes the latest publish
        # reached.
        self.reached_elsewhere: dict[str, int] = {}

    def _ensure_redis(self) -> None:
        fresh = self._pubsub is None
        super()._ensure_redis()
        if fresh:
            # redis-py calls the pub/sub client's `on_connect` (kept as a
            # weak method) on each of its connections, to subscribe again.
            self._pubsub.on_connect = self._pubsub_connected

    async def _pubsub_connected(self, connection: Any) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return
        # With subscriptions to make again, this is a reconnection.
        lost = bool(pubsub.channels)
        if lost:
            # Groups whose last socket here left while Redis was away: their
            # unsubscribe failed, and they would be subscribed again.
            layer = self.channel_layer
            for key in list(pubsub.channels):
                # redis-py keeps the names as bytes.
                name = key.decode() if isinstance(key, bytes) else key
                if _is_group(name) and not layer.groups.get(name):
                    del pubsub.channels[key]
                    self._subscribed_to.discard(name)
        await type(pubsub).on_connect(pubsub, connection)
        if lost:
            self._resumed()

    def _resumed(self) -> None:
        layer = self.channel_layer
        logger.info("The channel layer subscribed again after losing Redis")
        # What was published meanwhile reached nobody here, and other
        # processes' publishes reached nobody: every count is stale, and the
        # other processes learn that this one listens again.
        self.reached_elsewhere.clear()
        for channel in self._subscribed_to:
            if _is_group(channel):
                self._publishes.put((channel, JOINED), self._publish_all)
        for channel in list(layer.resume_listeners):
            queue = layer.channels.get(channel)
            if queue is None:
                layer.resume_listeners.discard(channel)
            else:
                queue.put_nowait(layer.channel_layer.serialize(RESUMED))

    async def publish(self, channel: str, message: bytes) -> None:
        self._ensure_redis()
        await self._publishes.add((channel, message), self._publish_all)

    async def subscribe(self, channel: str) -> None:
        await self._subscribes.add(channel, self._subscribe_all)

    async def flush(self) -> None:
        # What was asked for before the flush goes out (or fails) first.
        await self._publishes.wait()
        await self._subscribes.wait()
        await super().flush()

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                pipe.publish(channel, message)
            reached = await pipe.execute()
        if len(self.reached_elsewhere) > REACHED_KEPT:
            self.reached_elsewhere.clear()
        for (channel, _), count in zip(messages, reached, strict=True):
            # This process was one of those reached if it is subscribed.
            here = 1 if channel in self._subscribed_to else 0
            self.reached_elsewhere[channel] = count - here

    async def _subscribe_all(self, channels: list[str]) -> None:
        # The library's lock keeps subscribing and unsubscribing in order.
        async with self._lock:
            new = list(
                dict.fromkeys(c for c in channels if c not in self._subscribed_to)
            )
            if new:
                self._ensure_redis()
                self._ensure_receiver()
                try:
                    await self._pubsub.subscribe(*new)
                except RedisConnectionError:
                    # Redis dropped the pub/sub connection (a restart, an
                    # idle timeout): the first command sent on it fails, and
                    # the next one connects again. Without this, every
                    # socket of the batch would be refused for one dropped
                    # connection.
                    await self._pubsub.subscribe(*new)
                self._subscribed_to.update(new)
        # Processes in these groups learn that one more socket listens (an
        # answer being written there sends it what was written so far).
        for channel in dict.fromkeys(channels):
            if _is_group(channel):
                self._publishes.put((channel, JOINED), self._publish_all)

    def _receive_message(self, message: Any) -> None:
        if message is not None and message["data"] == JOINED:
            name = message["channel"]
            if isinstance(name, bytes):
                name = name.decode()
            self.reached_elsewhere.pop(name, None)
            prefix = f"{self.channel_layer.prefix}__group__"
            if name.startswith(prefix):
                live.joined(name[len(prefix) :])
            return
        super()._receive_message(message)

    async def _do_receiving(self) -> None:
        """Hand each message to the sockets of its group, as the library
        does; while Redis is unreachable, say so once rather than log a
        traceback every second."""
        unreachable = False
        while True:
            try:
                if self._pubsub is not None and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1
                    )
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (RedisError, OSError) as error:
                if not unreachable:
                    logger.warning(
                        "The channel layer cannot reach Redis (%s); "
                        "trying again every second",
                        type(error).__name__,
                    )
                unreachable = True
                await asyncio.sleep(1)
                continue
            except Exception:
                logger.exception("Receiving from the channel layer failed")
                await asyncio.sleep(1)
                continue
            if unreachable:
                logger.warning("The channel layer reaches Redis again")
                unreachable = False
