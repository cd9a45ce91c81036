"""Old conversations go away or lose their personal data; one visitor's data
can be exported and erased."""

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin import helpers
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from conversations import retention
from conversations.models import Conversation, Feedback, Message, Visitor
from conversations.tasks import apply_retention_task
from escalation.models import Escalation, InternalNote
from support_bot.celery import app as celery_app

pytestmark = pytest.mark.django_db

CARD = "4111 1111 1111 1111"
NOW = timezone.now()
LONG_AGO = NOW - datetime.timedelta(days=100)


def make_conversation(
    email: str = "ana@example.com", *, updated: datetime.datetime = NOW
) -> Conversation:
    """A conversation with a rated answer, an escalation and a note."""
    visitor = Visitor.objects.create(token_hash=Visitor.new_token(), email=email)
    conversation = Conversation.objects.create(
        visitor=visitor, summary=f"The customer gave card {CARD}.", last_seq=3
    )
    Message.objects.create(
        conversation=conversation, seq=1, role="customer", text=f"My card is {CARD}"
    )
    answer = Message.objects.create(
        conversation=conversation,
        seq=2,
        role="bot",
        text="Freeze it in the app.",
        metadata={"partial_text": f"Your card {CARD}"},
    )
    Message.objects.create(
        conversation=conversation, seq=3, role="customer", text=f"Email me: {email}"
    )
    Feedback.objects.create(message=answer, rating="up")
    Escalation.objects.create(
        conversation=conversation, reason="customer_request", summary=f"Card {CARD}"
    )
    InternalNote.objects.create(conversation=conversation, text=f"Card {CARD}")
    # auto_now fields take their value only through update().
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=updated)
    Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=updated)
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def old_and_new(settings: Any) -> tuple[Conversation, Conversation]:
    settings.RETENTION_DAYS = 30
    return make_conversation("old@example.com", updated=LONG_AGO), make_conversation()


def test_retention_keeps_everything_when_days_is_zero(settings: Any) -> None:
    settings.RETENTION_DAYS = 0
    make_conversation(updated=LONG_AGO)

    result = retention.apply_retention(NOW)

    assert result.mode == "keep"
    assert Message.objects.count() == 3


def test_retention_deletes_old_conversations_and_all_that_hangs_off_them(
    settings: Any, old_and_new: tuple[Conversation, Conversation]
) -> None:
    settings.RETENTION_MODE = "delete"
    _, new = old_and_new

    result = retention.apply_retention(NOW)

    assert (result.conversations, result.messages, result.visitors) == (1, 3, 1)
    assert list(Conversation.objects.all()) == [new]
    assert list(Visitor.objects.all()) == [new.visitor]
    assert {m.conversation_id for m in Message.objects.all()} == {new.pk}
    assert Feedback.objects.count() == 1
    assert [e.conversation_id for e in Escalation.objects.all()] == [new.pk]
    assert [n.conversation_id for n in InternalNote.objects.all()] == [new.pk]


def test_retention_anonymises_old_conversations_in_place(
    settings: Any, old_and_new: tuple[Conversation, Conversation]
) -> None:
    settings.RETENTION_MODE = "anonymise"
    old, new = old_and_new

    result = retention.apply_retention(NOW)

    assert (result.conversations, result.messages, result.visitors) == (1, 3, 1)
    texts = list(old.messages.order_by("seq").values_list("text", flat=True))
    assert texts == ["My card is [card]", "Freeze it in the app.", "Email me: [email]"]
    assert old.messages.get(seq=2).metadata["partial_text"] == "Your card [card]"
    old.refresh_from_db()
    assert (old.summary, old.visitor.email) == ("", "")
    assert old.updated_at == LONG_AGO, "anonymising is not activity"
    assert old.escalations.get().summary == ""
    assert old.notes.get().text == "Card [card]"
    assert Feedback.objects.count() == 2, "ratings stay for the figures"

    new.refresh_from_db()
    assert new.summary and new.visitor.email == "ana@example.com"
    assert new.messages.get(seq=1).text == f"My card is {CARD}"


def test_a_second_anonymising_run_reads_only_what_is_new(
    settings: Any, old_and_new: tuple[Conversation, Conversation]
) -> None:
    settings.RETENTION_MODE = "anonymise"
    retention.apply_retention(NOW)

    again = retention.apply_retention(NOW)

    assert (again.conversations, again.messages) == (0, 0)


def test_beat_runs_the_retention_task(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["apply-retention"]
    assert entry["task"] == apply_retention_task.name
    assert entry["task"] in celery_app.tasks

    settings.RETENTION_DAYS = 30
    make_conversation(updated=LONG_AGO)
    apply_retention_task.delay()

    assert not Conversation.objects.exists()


# --- Export and erase ---------------------------------------------------------------


def test_export_contains_everything_about_the_visitor(tmp_path: Path) -> None:
    conversation = make_conversation()
    make_conversation("someone-else@example.com")
    out = tmp_path / "export.json"

    call_command("export_visitor", str(conversation.visitor_id), "--out", str(out))

    data = json.loads(out.read_text())
    assert data["visitor"]["email"] == "ana@example.com"
    assert "token_hash" not in data["visitor"]
    [exported] = data["conversations"]
    assert exported["id"] == str(conversation.pk)
    assert exported["summary"] == conversation.summary
    assert [m["text"] for m in exported["messages"]] == [
        f"My card is {CARD}",
        "Freeze it in the app.",
        "Email me: ana@example.com",
    ]
    assert exported["messages"][1]["feedback"]["rating"] == "up"
    assert exported["escalations"][0]["reason"] == "customer_request"
    assert exported["notes"][0]["text"] == f"Card {CARD}"


def test_erase_needs_yes_then_removes_everything_of_the_visitor() -> None:
    conversation = make_conversation()
    other = make_conversation("someone-else@example.com")
    visitor_id = str(conversation.visitor_id)

    with pytest.raises(CommandError, match="--yes"):
        call_command("erase_visitor", visitor_id)
    assert Visitor.objects.filter(pk=visitor_id).exists()

    call_command("erase_visitor", visitor_id, "--yes")

    assert list(Visitor.objects.all()) == [other.visitor]
    assert list(Conversation.objects.all()) == [other]
    assert {m.conversation_id for m in Message.objects.all()} == {other.pk}
    assert Feedback.objects.count() == 1
    assert Escalation.objects.count() == InternalNote.objects.count() == 1


def test_admin_exports_a_visitor_as_a_download(admin_client: Client) -> None:
    conversation = make_conversation()

    response = admin_client.post(
        "/admin/conversations/conversation/",
        {
            "action": "export_visitor_data",
            helpers.ACTION_CHECKBOX_NAME: [conversation.pk],
        },
    )

    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    [visitor] = json.loads(response.content)["visitors"]
    assert visitor["visitor"]["id"] == str(conversation.visitor_id)
    assert len(visitor["conversations"][0]["messages"]) == 3


def test_admin_erases_a_visitor_after_confirmation(admin_client: Client) -> None:
    conversation = make_conversation()
    form = {
        "action": "erase_visitors",
        helpers.ACTION_CHECKBOX_NAME: [conversation.visitor_id],
    }

    confirm = admin_client.post("/admin/conversations/visitor/", form)

    assert confirm.status_code == 200
    assert b"Yes, erase them" in confirm.content
    assert Visitor.objects.exists()

    done = admin_client.post("/admin/conversations/visitor/", {**form, "post": "yes"})

    assert done.status_code == 302
    assert not Visitor.objects.exists()
    assert not Message.objects.exists()
