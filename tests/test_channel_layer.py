"""The channel layer: Redis batches what piles up and still delivers everything
in order; both layers tell whether another socket listens."""

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

from support_bot import live
from support_bot.channel_layer import BatchingPubSubChannelLayer


def layer_on(url: str) -> Any:
    return BatchingPubSubChannelLayer(hosts=[url])


def subscribe_commands(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_subscribe", {}).get("calls", 0))


@pytest.mark.redis
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


@pytest.mark.redis
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


async def until(condition: Any, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    pytest.fail("the condition never held")


@pytest.mark.redis
async def test_a_layer_knows_whether_another_socket_listens(redis_url: str) -> None:
    here, elsewhere = layer_on(redis_url), layer_on(redis_url)
    asking = await here.new_channel()
    await here.group_add("conversation", asking)
    # Unknown until something was published to the group.
    assert here.others_listening("conversation", asking)

    await here.group_send("conversation", {"type": "note"})
    assert not here.others_listening("conversation", asking)

    # Another tab on this process.
    tab = await here.new_channel()
    await here.group_add("conversation", tab)
    assert here.others_listening("conversation", asking)
    await here.group_discard("conversation", tab)
    assert not here.others_listening("conversation", asking)

    # Another tab on another process: its process says it joined.
    other = await elsewhere.new_channel()
    await elsewhere.group_add("conversation", other)
    await until(lambda: here.others_listening("conversation", asking))
    await here.group_send("conversation", {"type": "note"})
    assert here.others_listening("conversation", asking)
    # The tab itself heard nothing of the joining: the note comes first.
    assert await asyncio.wait_for(elsewhere.receive(other), 5) == {"type": "note"}
    # Counted while this process had no socket in the group, then one joins:
    # the other process's tab is still there.
    await here.group_discard("conversation", asking)
    await here.group_send("conversation", {"type": "note"})
    assert here.others_listening("conversation", None)
    await here.group_add("conversation", asking)
    assert here.others_listening("conversation", asking)
    await here.flush()
    await elsewhere.flush()


async def test_one_process_knows_whether_another_socket_listens(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }
    layer = get_channel_layer()
    assert layer is not None
    asking, tab = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conversation", asking)
    assert not live.others_listening("conversation", asking)

    await layer.group_add("conversation", tab)
    assert live.others_listening("conversation", asking)


def layer_config_for(redis_url: str) -> dict[str, Any]:
    """The channel layer's CONFIG that the settings build for `redis_url`."""
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.CHANNEL_LAYERS['default']['CONFIG']))"
    )
    env = {**os.environ, "REDIS_URL": redis_url, "CELERY_BROKER_URL": ""}
    env["DJANGO_SETTINGS_MODULE"] = "support_bot.settings"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(out.stdout)
    return config


@pytest.mark.redis
async def test_deployments_on_two_databases_of_one_redis_hear_only_their_own(
    redis_url: str,
) -> None:
    """Redis pub/sub ignores database numbers; the layer's names must not."""
    base = redis_url.rsplit("/", 1)[0]
    ours = BatchingPubSubChannelLayer(**layer_config_for(f"{base}/8"))
    # The same database, named the other way redis-py reads.
    also_ours = BatchingPubSubChannelLayer(**layer_config_for(f"{base}?db=8"))
    theirs = BatchingPubSubChannelLayer(**layer_config_for(f"{base}?db=9"))
    mine, their_socket = await ours.new_channel(), await theirs.new_channel()
    await ours.group_add("agents", mine)
    await theirs.group_add("agents", their_socket)

    await also_ours.group_send("agents", {"type": "note", "k": "ours"})

    assert (await asyncio.wait_for(ours.receive(mine), 5))["k"] == "ours"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(theirs.receive(their_socket), 0.5)
    for layer in (ours, also_ours, theirs):
        await layer.flush()
