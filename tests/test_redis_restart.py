"""Redis restarts under a running server: nothing is lost, live delivery
comes back by itself.

A Redis server of the test's own, on a port of its own, so that killing it
disturbs nobody else.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from websockets.exceptions import ConnectionClosedError

from conversations import actions as conversation_actions
from conversations.models import Visitor
from escalation.actions import NOBODY_NOTICE, WAITING_NOTICE
from support_bot import live
from support_bot.channel_layer import BatchingPubSubChannelLayer
from support_bot.consumers import LAYER_DOWN_CLOSE_CODE
from tests import servers
from tests.agents import receive_type, take_over
from tests.conftest import require_service
from tests.test_channel_layer import until
from tests.widget import receive_until, resume


class RedisServer:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        require_service("redis-server", "the test starts and kills a Redis of its own")
    server = RedisServer(servers.free_port(), tmp_path / "redis.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def web(own_redis: RedisServer, tmp_path: Path) -> Iterator[int]:
    """A web process on the test's own Redis; its port."""
    yield from _web_process(own_redis, tmp_path / "web-1")


@pytest.fixture
def second_web(own_redis: RedisServer, tmp_path: Path) -> Iterator[int]:
    """Another web process on the same Redis and database."""
    yield from _web_process(own_redis, tmp_path / "web-2")


def _web_process(own_redis: RedisServer, tmp_path: Path) -> Iterator[int]:
    tmp_path.mkdir()
    port = servers.free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": servers.test_database_url(),
        "REDIS_URL": own_redis.url,
        "CELERY_BROKER_URL": own_redis.url.replace("/0", "/1"),
        "DEBUG": "true",
        "WIDGET_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "OPENAI_API_KEY": "",
        "OFFLINE_STREAM_DELAY_MS": "40",
    }
    server = servers.start_uvicorn(env, port, tmp_path / "server.log")
    yield port
    servers.stop(server)


def told_to_come_back(action: Callable[[], object]) -> None:
    """`action` ends with the socket closed as one is while Redis is down."""
    with pytest.raises(ConnectionClosedError) as closed:
        action()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == LAYER_DOWN_CLOSE_CODE


def two_tabs(port: int) -> tuple[servers.Widget, servers.Widget]:
    """A visitor who asked once in one tab, and a second tab of theirs."""
    asking = servers.Widget(port)
    asking.resume()
    asking.ask("q-1", "I lost my card")
    asking.receive_until(servers.is_bot_message)
    other_tab = servers.Widget(port, asking.token)
    other_tab.resume(after_seq=2)
    return asking, other_tab


@pytest.mark.django_db(transaction=True)
def test_two_tabs_keep_chatting_across_a_redis_restart(
    own_redis: RedisServer, kb: Any, web: int
) -> None:
    asking, other_tab = two_tabs(web)

    own_redis.kill()
    # While Redis is away the asking tab still gets its answer (directly),
    try:
        ack = asking.ask("q-2", "How do I change my PIN?")
        answer = asking.receive_until(servers.is_bot_message)
        assert (answer["reply_to"], answer["seq"]) == (ack["seq"], ack["seq"] + 1)
        # and a socket opened meanwhile is told to try again later.
        told_to_come_back(lambda: servers.Widget(web, asking.token))
    finally:
        own_redis.start()

    # Back: a new tab finds the answer stored while Redis was away,
    third_tab = servers.Widget(web, asking.token)
    third_tab.send({"type": "resume", "after_seq": 2})
    replayed = third_tab.receive_until(lambda f: f.get("seq") == answer["seq"])
    assert replayed["text"] == answer["text"]
    third_tab.close()

    # and the next answer reaches the tab open all along live again, once the
    # layer has subscribed anew (it retries on its own).
    deadline = time.monotonic() + 20
    live_again = False
    turn = 3
    while not live_again and time.monotonic() < deadline:
        asking.ask(f"q-{turn}", "When will my card arrive?")
        answer = asking.receive_until(servers.is_bot_message)
        turn += 1
        seq = answer["seq"]
        try:
            seen = other_tab.receive_until(
                lambda f: bool(f.get("seq") == seq),  # noqa: B023
                seconds=2,
            )
        except TimeoutError:
            continue
        live_again = seen["replay"] is False
    assert live_again, "the tab open all along never got an answer live again"
    asking.close()
    other_tab.close()


@pytest.mark.django_db(transaction=True)
def test_a_first_message_while_redis_is_down_is_answered_and_the_tab_comes_back(
    own_redis: RedisServer, kb: Any, web: int
) -> None:
    tab = servers.Widget(web)
    tab.resume()

    own_redis.kill()
    try:
        # Stored, so acknowledged; but the tab cannot join its new
        # conversation, and is told to come back.
        ack = tab.ask("q-1", "How do I change my PIN?")
        assert ack["duplicate"] is False
        told_to_come_back(lambda: tab.receive_until(lambda f: False))
    finally:
        own_redis.start()

    # Back, it finds the answer, written meanwhile.
    back = servers.Widget(web, tab.token)
    back.send({"type": "resume", "after_seq": 0})
    answer = back.receive_until(servers.is_bot_message)
    assert answer["reply_to"] == ack["seq"]
    back.close()


@pytest.mark.django_db(transaction=True)
def test_a_stalled_redis_holds_up_neither_the_answer_nor_its_storing(
    own_redis: RedisServer, kb: Any, web: int
) -> None:
    # Another tab, so that the answer has someone to publish to.
    asking, other_tab = two_tabs(web)

    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        ack = asking.ask("q-2", "How do I change my PIN?")
        # Redis answers nothing; the asking tab is answered all the same.
        answer = asking.receive_until(servers.is_bot_message, seconds=10)
        assert answer["reply_to"] == ack["seq"]
    finally:
        own_redis.process.send_signal(signal.SIGCONT)

    # And the other tab gets it once Redis answers again.
    seen = other_tab.receive_until(lambda f: f.get("seq") == answer["seq"], seconds=10)
    assert seen["text"] == answer["text"]
    asking.close()
    other_tab.close()


async def test_no_socket_is_refused_for_a_connection_redis_dropped(
    own_redis: RedisServer,
) -> None:
    layer = BatchingPubSubChannelLayer(hosts=[own_redis.url])
    # A socket came and went: the layer's pub/sub connection is idle.
    left = await layer.new_channel()
    receiving = asyncio.create_task(layer.receive(left))
    await asyncio.sleep(0.2)
    receiving.cancel()
    await asyncio.sleep(0.3)
    # Redis drops it (its idle timeout, say).
    admin = redis.Redis.from_url(own_redis.url)
    admin.client_kill_filter(_type="normal", skipme=True)
    await asyncio.sleep(0.3)

    # Sockets open, five at once, each subscribing to its channel.
    opened = []
    for _ in range(3):
        opened += await asyncio.gather(
            *(layer.new_channel() for _ in range(5)), return_exceptions=True
        )

    assert all(isinstance(c, str) for c in opened), opened
    await layer.flush()


async def test_sockets_that_asked_are_told_when_the_layer_is_back(
    own_redis: RedisServer,
) -> None:
    layer = BatchingPubSubChannelLayer(hosts=[own_redis.url])
    asked, other = await layer.new_channel(), await layer.new_channel()
    layer.tell_when_resumed(asked)
    await layer.group_add("conversation", asked)
    await layer.group_add("conversation", other)

    # Redis drops the pub/sub connection (a restart, a failover).
    admin = redis.Redis.from_url(own_redis.url)
    admin.client_kill_filter(_type="pubsub")

    told = await asyncio.wait_for(layer.receive(asked), 10)
    assert told == {"type": "layer.resumed"}
    # And the group is live again for both.
    await layer.group_send("conversation", {"type": "note"})
    assert await asyncio.wait_for(layer.receive(asked), 10) == {"type": "note"}
    assert await asyncio.wait_for(layer.receive(other), 10) == {"type": "note"}
    await layer.flush()


@pytest.fixture
def layer_on_own_redis(own_redis: RedisServer, settings: Any) -> Iterator[RedisServer]:
    """The tests' ASGI application on the Redis layer of the test's own Redis
    (which it returns)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "support_bot.channel_layer.BatchingPubSubChannelLayer",
            "CONFIG": {"hosts": [own_redis.url]},
        }
    }
    channel_layers.backends.clear()
    yield own_redis
    channel_layers.backends.clear()


def drop_pubsub(server: RedisServer) -> None:
    redis.Redis.from_url(server.url).client_kill_filter(_type="pubsub")


@contextmanager
def published_nowhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Live events sent meanwhile are lost, as while Redis is away."""
    with monkeypatch.context() as lost:
        lost.setattr(live, "send_now", lambda group, event: None)
        yield


async def test_a_widget_gets_what_was_published_while_the_layer_was_away(
    layer_on_own_redis: RedisServer, connect: Any, kb: Any, monkeypatch: Any
) -> None:
    widget = await connect()
    await resume(widget)
    visitor = await Visitor.objects.aget()

    # A hand-over is stored while Redis is away: its live events are lost.
    with published_nowhere(monkeypatch):
        await sync_to_async(conversation_actions.request_human)(visitor)
    assert await widget.receive_nothing(timeout=0.5)

    # Redis drops the layer's pub/sub connection; the layer connects again.
    drop_pubsub(layer_on_own_redis)

    frames = await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "waiting"
    )
    texts = [f["text"] for f in frames if f["type"] == "message"]
    # Routing found nobody online and said so too, also unpublished.
    assert texts == [WAITING_NOTICE, NOBODY_NOTICE]


async def test_a_console_gets_what_was_published_while_the_layer_was_away(
    layer_on_own_redis: RedisServer, connect: Any, kb: Any, monkeypatch: Any
) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await console.send_json_to({"type": "open", "conversation": conversation})
    await receive_type(console, "transcript")
    # The replay of what is stored ends with the agent joining.
    await receive_type(console, "message", text="Dana from support joined.")
    visitor = await Visitor.objects.aget()

    with published_nowhere(monkeypatch):
        await sync_to_async(conversation_actions.post_customer_message_once)(
            visitor, "c-while-away", "Are you still there?"
        )

    drop_pubsub(layer_on_own_redis)

    message = await receive_type(console, "message", text="Are you still there?")
    assert message["conversation"] == conversation
    await console.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_tab_opened_mid_answer_on_another_process_sees_it_stream(
    kb: Any, web: int, second_web: int
) -> None:
    asking = servers.Widget(web)
    asking.resume()
    asking.ask("q-1", "How do I change my PIN?")
    asking.receive_until(lambda f: f["type"] == "bot.delta")

    # The customer opens another page of the site, served by the other process.
    other = servers.Widget(second_web, asking.token)
    other.resume()
    typing = other.receive_until(lambda f: f["type"] in ("typing", "message"))
    assert typing["type"] == "typing", "the bot's typing notice never came"
    piece = other.receive_until(lambda f: f["type"] in ("bot.delta", "message"))
    assert piece["type"] == "bot.delta", "no piece of the answer streamed"
    other.receive_until(servers.is_bot_message)
    asking.close()
    other.close()


async def test_after_an_outage_each_process_knows_the_others_listen_again(
    own_redis: RedisServer,
) -> None:
    here, elsewhere = (
        BatchingPubSubChannelLayer(hosts=[own_redis.url]) for _ in range(2)
    )
    asking, other_tab = await here.new_channel(), await elsewhere.new_channel()
    await here.group_add("conversation", asking)
    await elsewhere.group_add("conversation", other_tab)
    await until(lambda: here.others_listening("conversation", asking))

    # The pub/sub connections drop; a publish meanwhile reaches nobody, and
    # the count it brings back says nobody else listens.
    drop_pubsub(own_redis)
    await here.group_send("conversation", {"type": "lost"})
    assert not here.others_listening("conversation", asking)

    # Both connect again: the count is not trusted any more.
    await until(lambda: here.others_listening("conversation", asking))
    await here.flush()
    await elsewhere.flush()


async def test_a_group_left_while_redis_was_away_is_not_joined_again(
    own_redis: RedisServer,
) -> None:
    layer = BatchingPubSubChannelLayer(hosts=[own_redis.url])
    staying, leaving = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("kept", staying)
    await layer.group_add("left", leaving)

    own_redis.kill()
    try:
        # Refused, or written into the dead connection: either way Redis
        # never hears of it.
        with contextlib.suppress(redis.RedisError):
            await layer.group_discard("left", leaving)
    finally:
        own_redis.start()

    admin = redis.Redis.from_url(own_redis.url)

    def subscribers(group: str) -> int:
        counts = dict(admin.pubsub_numsub(f"asgi__group__{group}"))
        return int(counts[f"asgi__group__{group}".encode()])

    await until(lambda: subscribers("kept") == 1)
    assert subscribers("left") == 0
    await layer.flush()
