"""What an agent writes follows the widget's rules for text: NUL is dropped,
and text with nothing to show, or too much, gets a typed error and stores
nothing."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from escalation.actions import hold_answer
from escalation.models import HeldAnswer, InternalNote
from knowledge.models import Article
from tests.agents import receive_type, take_over
from tests.widget import is_bot_message, receive_until, resume


async def test_nul_is_dropped_from_replies_notes_and_titles(connect: Any) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await console.send_json_to({"type": "open", "conversation": conversation})
    await receive_type(console, "transcript")

    await console.send_json_to(
        {
            "type": "reply",
            "conversation": conversation,
            "client_id": "r1",
            "text": " Hel\x00lo ",
        }
    )
    ack = await receive_type(console, "ack", client_id="r1")
    await console.send_json_to(
        {"type": "note", "conversation": conversation, "text": "VIP\x00"}
    )
    note = await receive_type(console, "note")
    await console.send_json_to(
        {
            "type": "save_article",
            "conversation": conversation,
            "seq": ack["seq"],
            "title": "Greet\x00ings",
        }
    )
    saved = await receive_type(console, "article.saved")

    seen = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "agent"
    )
    assert seen[-1]["text"] == "Hello"
    assert (note["text"], saved["title"]) == ("VIP", "Greetings")
    assert (await InternalNote.objects.aget()).text == "VIP"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "reply", "client_id": "r1", "text": "\u200b\u200b"}, "empty_message"),
        ({"type": "reply", "client_id": "r1", "text": " \x00 "}, "empty_message"),
        ({"type": "reply", "client_id": "r1", "text": 42}, "invalid_frame"),
        ({"type": "note", "text": "\ufeff"}, "empty_message"),
        ({"type": "note", "text": "x" * 4001}, "message_too_long"),
        ({"type": "save_article", "seq": 1, "title": "\u200b"}, "empty_message"),
        ({"type": "save_article", "seq": 1, "title": "t" * 201}, "message_too_long"),
    ],
)
async def test_text_with_nothing_to_show_or_too_much_is_refused(
    connect: Any, frame: dict[str, Any], code: str
) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)

    await console.send_json_to({**frame, "conversation": conversation})

    error = await receive_type(console, "error")
    assert (error["code"], bool(error["message"])) == (code, True)
    assert not await Message.objects.filter(role="agent").aexists()
    assert not await InternalNote.objects.aexists()
    assert not await Article.objects.aexists()


async def test_an_edited_draft_follows_the_same_rules(connect: Any) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await sync_to_async(hold_answer)(conversation, 1, "Soon.", {}, "Checking…")
    held = await HeldAnswer.objects.aget()

    await console.send_json_to({"type": "approve", "draft": held.pk, "text": "\u200b"})
    refused = await receive_type(console, "error")
    await console.send_json_to(
        {"type": "approve", "draft": held.pk, "text": "In 3\x00 days."}
    )

    sent = await receive_until(widget, is_bot_message)
    assert refused["code"] == "empty_message"
    assert sent[-1]["text"] == "In 3 days."
