"""With the Celery broker unreachable, what was stored is reported as stored.

Tasks are queued after the change they follow commits. A broker that is
down must cost only the task, which is picked up again later (beat's sweep
routes escalations left queued); it must not turn a stored message into a
"server_error, safe to retry", nor a stored answer into a second one.
"""

import asyncio
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations import actions as conversation_actions
from escalation import actions
from escalation.models import Escalation
from support_bot.bot.decision import ASKED_FOR_PERSON
from support_bot.celery import app as celery_app
from tests import servers
from tests.agents import make_agent
from tests.widget import is_bot_message, new_client_id, receive_until, resume, settle


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis broker on a port nobody listens on, as when Redis was killed."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    # Celery reads the variable before its own setting.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setitem(
        celery_app.conf, "broker_url", f"redis://127.0.0.1:{servers.free_port()}/0"
    )
    # The app keeps the pools it made for the broker of earlier tests.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


def test_a_hand_over_is_stored_and_routed_later(
    transactional_db: None, broker_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    session = conversation_actions.open_visitor_session(None)
    conversation_actions.post_customer_message_once(session.visitor, "c-1", "Help!")

    with caplog.at_level(logging.WARNING, logger="support_bot.celery"):
        conversation = conversation_actions.request_human(session.visitor)

    assert conversation.status == "waiting"
    escalation = Escalation.objects.get()
    assert (escalation.status, escalation.routed_at) == ("queued", None)
    assert any("was not queued" in r.getMessage() for r in caplog.records)

    # Beat's sweep, once it runs again, offers it to whoever is online.
    dana = make_agent("dana")
    assert actions.sweep_escalations() == 1
    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to) == ("assigned", dana)


@pytest.mark.usefixtures("kb", "broker_down")
async def test_the_customer_gets_one_reply_and_no_error(
    connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="support_bot.celery")
    widget = await connect()
    await resume(widget)

    await widget.send_json_to(
        {
            "type": "message",
            "client_id": new_client_id(),
            "text": "I want to talk to a human",
        }
    )
    frames = await receive_until(widget, is_bot_message)
    # The queueing of the routing task gives up after kombu's retries.
    for _ in range(100):
        if any("was not queued" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the routing task's failure was never reported")
    frames += await settle(widget)

    assert [f for f in frames if f["type"] == "error"] == []
    replies = [f for f in frames if is_bot_message(f)]
    assert [r["text"] for r in replies] == [ASKED_FOR_PERSON]
    assert (await sync_to_async(Escalation.objects.get)()).status == "queued"
