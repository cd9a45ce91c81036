"""A visitor erased while their widget is open: the widget is closed, and
nothing of theirs is shown or kept when it comes back."""

from typing import Any

from asgiref.sync import sync_to_async

from conversations import consumers, retention
from conversations.models import Visitor
from tests.widget import ask, resume


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
