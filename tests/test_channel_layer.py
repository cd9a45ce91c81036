"""The Redis layer batches what piles up, and still delivers everything in order."""

import asyncio
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from support_bot.channel_layer import BatchingPubSubChannelLayer

pytestmark = pytest.mark.redis


def layer_on(url: str) -> Any:
    return BatchingPubSubChannelLayer(hosts=[url])


def subscribe_commands(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_subscribe", {}).get("calls", 0))


async def test_joins_and_sends_at_once_all_arrive_in_order(redis_url: str) -> None:
    sending, receiving = layer_on(redis_url), layer_on(redis_url)
    channels = [await receiving.new_channel() for _ in range(60)]
    before = subscribe_commands(redis_url)
    # Sixty sockets join sixty groups at once: they go out together rather
    # than one round trip after another.
    await asyncio.gather(
        *(receiving.group_add(f"g{n}", c) for n, c in enumerate(channels))
    )
    assert subscribe_commands(redis_url) - before == 1

    # Each group gets five messages from its own sender, all senders at once.
    async def send_five(n: int) -> None:
        for k in range(5):
            await sending.group_send(f"g{n}", {"type": "note", "k": k})

    await asyncio.gather(*(send_five(n) for n in range(60)))

    for channel in channels:
        got = [await asyncio.wait_for(receiving.receive(channel), 5) for _ in range(5)]
        assert [m["k"] for m in got] == [0, 1, 2, 3, 4]
    await sending.flush()
    await receiving.flush()


async def test_a_socket_that_left_its_group_hears_nothing_more(redis_url: str) -> None:
    sending, receiving = layer_on(redis_url), layer_on(redis_url)
    staying, leaving = await receiving.new_channel(), await receiving.new_channel()
    await receiving.group_add("stay", staying)
    await receiving.group_add("leave", leaving)
    await receiving.group_discard("leave", leaving)

    await sending.group_send("leave", {"type": "note", "k": "gone"})
    await sending.group_send("stay", {"type": "note", "k": "here"})

    assert (await asyncio.wait_for(receiving.receive(staying), 5))["k"] == "here"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(receiving.receive(leaving), 0.3)
    await sending.flush()
    await receiving.flush()


async def test_every_waiting_send_fails_when_redis_cannot_be_reached() -> None:
    # Nothing listens on port 1: each send of the batch gets the error.
    layer = BatchingPubSubChannelLayer(
        hosts=[{"address": "redis://127.0.0.1:1/0", "socket_connect_timeout": 1}]
    )

    results = await asyncio.gather(
        *(layer.group_send(f"g{n}", {"type": "note"}) for n in range(5)),
        return_exceptions=True,
    )

    assert all(isinstance(r, RedisConnectionError) for r in results), results
    await layer.flush()
