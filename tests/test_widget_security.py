"""Visitors reach only their own conversation, and only from allowed origins."""

from typing import Any

from channels.testing import WebsocketCommunicator

from conversations.models import Visitor
from support_bot.asgi import application
from tests.widget import ask, receive_until, resume, settle, stored_frames


async def test_socket_from_an_unlisted_origin_is_refused(
    transactional_db: None,
) -> None:
    communicator = WebsocketCommunicator(
        application, "/ws/widget/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_socket_without_an_origin_is_refused(transactional_db: None) -> None:
    communicator = WebsocketCommunicator(application, "/ws/widget/")
    connected, _ = await communicator.connect()
    assert not connected


async def test_unknown_token_gets_a_new_visitor_and_no_conversation(
    connect: Any, kb: Any
) -> None:
    owner = await connect()
    await resume(owner)
    await ask(owner, "How do I change my PIN?")

    stranger = await connect(token="made-up-token-" + "x" * 30)

    assert stranger.welcome["token"] != owner.welcome["token"]
    assert stranger.welcome["conversation"] is None
    replay = await resume(stranger, after_seq=0)
    assert [f["type"] for f in replay] == ["resumed", "status"]


async def test_visitor_never_sees_another_visitors_messages(
    connect: Any, kb: Any
) -> None:
    alice = await connect()
    await resume(alice)
    await ask(alice, "I lost my card")
    bob = await connect()
    await resume(bob)

    await ask(bob, "How do I change my PIN?")
    # Feedback by seq names Bob's own conversation, never Alice's.
    await bob.send_json_to({"type": "feedback", "seq": 2, "rating": "up"})
    await receive_until(bob, lambda f: f["type"] == "feedback.saved")

    replay = await resume(bob, after_seq=0)
    texts = [f["text"] for f in replay if f["type"] == "message"]
    assert "I lost my card" not in texts
    assert texts[0] == "How do I change my PIN?"
    assert stored_frames(await settle(alice)) == []


async def test_token_is_stored_only_as_a_hash(connect: Any) -> None:
    widget = await connect()
    token = widget.welcome["token"]

    assert not await Visitor.objects.filter(token_hash=token).aexists()
    assert len(token) >= 40


async def test_malformed_origin_is_refused_not_an_error(transactional_db: None) -> None:
    for origin in (b"http://127.0.0.1:8000.evil.com", b"http://127.0.0.1:80001x"):
        communicator = WebsocketCommunicator(
            application, "/ws/widget/", headers=[(b"origin", origin)]
        )
        connected, _ = await communicator.connect()
        assert not connected, origin


async def test_the_allowed_origins_are_the_current_setting(
    transactional_db: None, settings: Any
) -> None:
    settings.WIDGET_ALLOWED_ORIGINS = ["https://shop.example"]

    async def handshake(origin: bytes) -> bool:
        communicator = WebsocketCommunicator(
            application, "/ws/widget/", headers=[(b"origin", origin)]
        )
        connected, _ = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return bool(connected)

    assert await handshake(b"https://shop.example")
    assert not await handshake(b"http://127.0.0.1:8000")
