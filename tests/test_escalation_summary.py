"""The queue's summary of a hand-over reads as lines, one point each."""

import pytest

from conversations import actions
from conversations.models import Conversation
from escalation.models import Escalation


@pytest.mark.django_db
def test_the_summary_keeps_its_lines_and_the_latest_asks_follow() -> None:
    visitor = actions.open_visitor_session(None).visitor
    actions.post_customer_message(visitor, "q-1", "My card is lost")
    actions.post_customer_message(visitor, "q-2", "And my PIN is blocked")
    Conversation.objects.update(
        summary="The customer asked: where is my card\n"
        "The customer asked: how do I order a new one"
    )

    actions.request_human(visitor)

    summary = Escalation.objects.get().summary
    assert summary.splitlines() == [
        "The customer asked: where is my card",
        "The customer asked: how do I order a new one",
        "Latest from the customer: My card is lost / And my PIN is blocked",
    ]


@pytest.mark.django_db
def test_asks_the_summary_already_holds_are_not_repeated() -> None:
    visitor = actions.open_visitor_session(None).visitor
    actions.post_customer_message(visitor, "q-1", "Where is my card")
    folded = actions.post_customer_message(visitor, "q-2", "How do I order one")
    actions.post_customer_message(visitor, "q-3", "And my PIN is blocked")
    Conversation.objects.update(
        summary="The customer asked: where is my card\n"
        "The customer asked: how do I order a new one",
        summary_until_seq=folded.message.seq,
    )

    actions.request_human(visitor)

    summary = Escalation.objects.get().summary
    assert summary.splitlines() == [
        "The customer asked: where is my card",
        "The customer asked: how do I order a new one",
        "Latest from the customer: And my PIN is blocked",
    ]
