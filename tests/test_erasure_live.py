"""A visitor erased while their widget is open: the widget is closed, and
nothing of theirs is shown or kept when it comes back."""

import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations import consumers, replies, retention
from conversations.models import Message, Visitor
from tests.fake_llm import Reply
from tests.widget import ask, new_client_id, receive_until, resume


async def test_an_erased_visitors_open_widget_is_closed_and_starts_afresh(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    old_token = widget.welcome["token"]
    visitor = await Visitor.objects.aget()

    await sync_to_async(retention.erase_visitor)(visitor.pk)

    closed = await widget.receive_output(timeout=5)
    assert closed == {
        "type": "websocket.close",
        "code": consumers.VISITOR_ERASED_CLOSE_CODE,
    }
    again = await connect(token=old_token)
    assert again.welcome["token"] != old_token
    assert (again.welcome["conversation"], again.welcome["last_seq"]) == (None, 0)


async def test_a_visitor_deleted_in_admin_has_their_widget_closed_too(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")

    # The admin's Delete button and bulk delete go through the ORM's delete.
    await sync_to_async(Visitor.objects.all().delete)()

    closed = await widget.receive_output(timeout=5)
    assert closed == {
        "type": "websocket.close",
        "code": consumers.VISITOR_ERASED_CLOSE_CODE,
    }


async def test_erasing_a_visitor_mid_answer_is_no_failure(
    connect: Any, kb: Any, llm: Any, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script(Reply(chunks=["Freeze the card ", "in the app."], chunk_delay=0.5))
    widget = await connect()
    await resume(widget)
    await widget.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "I lost my card"}
    )
    await receive_until(widget, lambda f: f["type"] == "bot.delta")
    visitor = await Visitor.objects.aget()

    with caplog.at_level(logging.INFO, logger="conversations.replies"):
        await sync_to_async(retention.erase_visitor)(visitor.pk)
        await replies.drain()

    assert [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ] == []
    assert any(
        "deleted while it was being answered" in r.getMessage() for r in caplog.records
    )
    assert not await Message.objects.aexists()
