"""On one machine without Redis, tasks run inline and no broker is involved."""

import logging

import pytest

from conversations import actions
from conversations.models import Message
from escalation.actions import NOBODY_NOTICE
from support_bot.celery import app as celery_app


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker the settings choose when REDIS_URL is unset."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setitem(celery_app.conf, "broker_url", "memory://")
    # The app keeps the pools it made for the broker of earlier tests.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


def test_an_escalation_logs_no_broker_warning(
    transactional_db: None, no_broker: None, caplog: pytest.LogCaptureFixture
) -> None:
    session = actions.open_visitor_session(None)
    actions.post_customer_message_once(session.visitor, "c-1", "Help!")

    with caplog.at_level(logging.WARNING):
        actions.request_human(session.visitor)

    # Routed inline, where it found nobody online.
    assert Message.objects.filter(text=NOBODY_NOTICE).exists()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("kombu")] == []
