"""Bad frames get a typed error, store nothing, and leave the socket usable."""

import json
import os
from typing import Any

import pytest
from django.conf import settings

from conversations.models import Message
from conversations.protocol import MAX_FRAME_BYTES
from tests import servers
from tests.agents import take_over
from tests.widget import ask, new_client_id, receive_until, resume, settle


async def expect_error(widget: Any, code: str) -> dict[str, Any]:
    frame: dict[str, Any] = await widget.receive_json_from()
    while frame["type"] == "typing":  # the end of an earlier answer's typing
        frame = await widget.receive_json_from()
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert frame["message"], "an error must carry a sentence for people"
    return frame


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ('"hello"', "bad_json"),
        ("{}", "unknown_type"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "message", "text": "hi"}', "invalid_frame"),
        ('{"type": "message", "client_id": "a b", "text": "hi"}', "invalid_frame"),
        ('{"type": "message", "client_id": "x", "text": 42}', "invalid_frame"),
        ('{"type": "message", "client_id": "x", "text": "   "}', "empty_message"),
        ('{"type": "resume", "after_seq": -1}', "invalid_frame"),
        ('{"type": "resume", "after_seq": true}', "invalid_frame"),
        ('{"type": "feedback", "seq": 1, "rating": "meh"}', "invalid_frame"),
        ('{"type": "typing"}', "invalid_frame"),
        ('{"type": "hello", "token": null}', "invalid_frame"),
        ('{"type": ["hello"]}', "unknown_type"),
        ("[" * 30_000 + "]" * 30_000, "bad_json"),
        ('{"type": "message", "client_id": "x", "text": "a\\ud800b"}', "bad_json"),
        ('{"type": "message", "client_id": "x", "text": "\\u0000"}', "empty_message"),
        (
            '{"type": "message", "client_id": "x", "text": "\\u200b\\ufeff "}',
            "empty_message",
        ),
        ('{"type": "resume", "after_seq": 1.5}', "invalid_frame"),
    ],
)
async def test_malformed_frame_gets_typed_error_and_socket_stays_usable(
    connect: Any, kb: Any, raw: str, code: str
) -> None:
    widget = await connect()
    await resume(widget)

    await widget.send_to(text_data=raw)
    await expect_error(widget, code)

    frames = await ask(widget, "How do I change my PIN?")
    assert frames[-1]["sources"], "the socket must still answer"
    assert await Message.objects.filter(role="customer").acount() == 1


async def test_binary_frame_is_refused(connect: Any) -> None:
    widget = await connect()
    await widget.send_to(bytes_data=b"\x00\x01")
    await expect_error(widget, "bad_json")


async def test_message_over_the_limit_is_refused_whole(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    client_id = new_client_id()

    await widget.send_json_to(
        {"type": "message", "client_id": client_id, "text": "x" * 20_000}
    )

    error = await expect_error(widget, "message_too_long")
    assert error["client_id"] == client_id
    assert await Message.objects.acount() == 0


async def test_oversized_frame_is_refused_without_parsing(connect: Any) -> None:
    widget = await connect()
    text = json.dumps({"type": "message", "client_id": "big", "text": "y" * 100_000})

    await widget.send_to(text_data=text)

    await expect_error(widget, "frame_too_large")
    assert await Message.objects.acount() == 0


async def test_frames_before_hello_are_refused(connect: Any) -> None:
    widget = await connect(hello=False)

    await widget.send_json_to({"type": "message", "client_id": "a", "text": "hi"})

    await expect_error(widget, "not_ready")
    assert await Message.objects.acount() == 0


async def test_flood_is_rate_limited_and_nothing_half_stored(
    connect: Any, kb: Any, settings: Any
) -> None:
    settings.WIDGET_RATE_BURST = 5
    settings.WIDGET_RATE_PER_SECOND = 0.5
    widget = await connect()
    await resume(widget)

    for n in range(30):
        await widget.send_json_to(
            {"type": "message", "client_id": f"flood-{n}", "text": f"question {n}"}
        )
    acks: list[str] = []
    limited: list[str] = []
    while len(acks) + len(limited) < 30:
        frame = await widget.receive_json_from(timeout=10)
        if frame["type"] == "ack":
            acks.append(frame["client_id"])
        elif frame["type"] == "error":
            assert frame["code"] == "rate_limited"
            assert frame["retry_after"] >= 1
            limited.append(frame["client_id"])

    assert acks == [f"flood-{n}" for n in range(5)]
    stored = [str(m.client_id) async for m in Message.objects.filter(role="customer")]
    assert sorted(stored) == sorted(acks)


async def test_every_frame_that_stores_something_is_rate_limited(
    connect: Any, kb: Any, settings: Any
) -> None:
    settings.WIDGET_RATE_BURST = 5
    settings.WIDGET_RATE_PER_SECOND = 0.001  # no refill within the test
    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    await receive_until(widget, lambda f: f["type"] == "queue")
    notices_before = await Message.objects.filter(role="system").acount()

    for n in range(40):
        frame: dict[str, Any] = {"type": "contact", "email": f"a{n}@example.com"}
        if n % 2:
            frame = {"type": "rate", "score": 1 + n % 5}
        await widget.send_json_to(frame)
    answers: list[dict[str, Any]] = []
    while len(answers) < 40:
        frame = await widget.receive_json_from(timeout=10)
        if frame["type"] != "message":  # the notices of saved addresses
            answers.append(frame)

    refused = [f for f in answers if f["type"] == "error"]
    assert {f["code"] for f in refused} == {"rate_limited"}
    assert len(refused) == 35
    notices = await Message.objects.filter(role="system").acount()
    assert notices - notices_before <= 3  # one per address saved


async def test_a_customer_typing_is_forwarded_once_per_change(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await console.send_json_to({"type": "open", "conversation": conversation})
    await settle(console)

    for active in [True] * 50 + [False] * 50 + [True]:
        await widget.send_json_to({"type": "typing", "active": active})

    typing = [f["active"] for f in await settle(console) if f["type"] == "typing"]
    assert typing == [True, False, True]


async def test_a_customer_flipping_typing_is_cut_to_a_few_a_second(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await console.send_json_to({"type": "open", "conversation": conversation})
    await settle(console)

    for n in range(200):
        await widget.send_json_to({"type": "typing", "active": n % 2 == 0})

    typing = [f for f in await settle(console) if f["type"] == "typing"]
    assert 2 <= len(typing) <= 30  # a burst of 6, then 2 a second


async def test_feedback_on_a_message_that_is_not_a_bot_answer(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")

    await widget.send_json_to({"type": "feedback", "seq": 1, "rating": "up"})
    await expect_error(widget, "not_found")

    await widget.send_json_to({"type": "feedback", "seq": 2, "rating": "down"})
    saved = await receive_until(widget, lambda f: f["type"] == "feedback.saved")
    assert saved[-1] == {"type": "feedback.saved", "seq": 2, "rating": "down"}


async def test_rate_limit_is_per_visitor_not_per_socket(
    connect: Any, kb: Any, settings: Any
) -> None:
    settings.WIDGET_RATE_BURST = 3
    settings.WIDGET_RATE_PER_SECOND = 0.1
    first = await connect()
    token = first.welcome["token"]
    for n in range(3):
        await first.send_json_to(
            {"type": "message", "client_id": f"a{n}", "text": "hi"}
        )
        await receive_until(first, lambda f: f["type"] == "ack")

    second = await connect(token=token)
    await second.send_json_to({"type": "message", "client_id": "b0", "text": "hi"})

    await expect_error(second, "rate_limited")


async def test_socket_that_never_says_hello_is_closed(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conversations import consumers

    monkeypatch.setattr(consumers, "HELLO_TIMEOUT", 0.1)
    widget = await connect(hello=False)

    closed = await widget.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": consumers.NO_HELLO_CLOSE_CODE}


async def test_half_an_emoji_is_refused_naming_its_message(
    connect: Any, kb: Any
) -> None:
    """The error names the message, so the widget settles it instead of
    sending it again after every reconnect."""
    widget = await connect()
    await resume(widget)

    await widget.send_to(
        text_data='{"type": "message", "client_id": "half", "text": "card \\ud83d"}'
    )

    error = await expect_error(widget, "bad_json")
    assert error["client_id"] == "half"
    assert await Message.objects.acount() == 0


def test_the_longest_message_fits_in_a_frame_however_written() -> None:
    """Six bytes a character (a JSON escape) plus the frame's other fields."""
    longest = "\u0001" * settings.MAX_MESSAGE_CHARS_LIMIT
    frame = json.dumps({"type": "message", "client_id": "x" * 64, "text": longest})
    assert len(frame.encode()) <= MAX_FRAME_BYTES

    env = {**os.environ, "MAX_MESSAGE_CHARS": "25000"}
    refusal = servers.manage_refused(env, "check")
    assert "MAX_MESSAGE_CHARS can be at most 10,000" in refusal


async def test_a_socket_repeating_resume_is_slowed_down(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    await resume(widget)
    await resume(widget)

    await widget.send_json_to({"type": "resume", "after_seq": 0})

    error = await expect_error(widget, "rate_limited")
    assert error["retry_after"] >= 1
    frames = await ask(widget, "How do I change my PIN?")
    assert frames[-1]["sources"], "the socket must still answer"
