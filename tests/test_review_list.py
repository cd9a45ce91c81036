"""Answers worth a second look land in a review list in admin, and one click
turns one into an inactive article or a draft guideline."""

from typing import Any

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import Conversation, Feedback, Message, Visitor
from knowledge.models import Article, Guideline, GuidelineVersion
from oversight import actions
from oversight.models import ReviewItem

pytestmark = pytest.mark.django_db

QUESTION = "Can I get a refund for a card payment I didn't make?"
ANSWER = "Yes: report it under Payments and we refund it within 2 days."


@pytest.fixture
def conversation() -> Conversation:
    visitor = Visitor.objects.create(token_hash=Visitor.new_token())
    return Conversation.objects.create(visitor=visitor)


def say(conversation: Conversation, role: str, text: str) -> Message:
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq"])
    return Message.objects.create(
        conversation=conversation, seq=conversation.last_seq, role=role, text=text
    )


def rate(message: Message, rating: str, commits: Any) -> None:
    with commits(execute=True):
        Feedback.objects.update_or_create(message=message, defaults={"rating": rating})


def test_a_not_helpful_answer_is_listed_once_with_its_question(
    conversation: Conversation, django_capture_on_commit_callbacks: Any
) -> None:
    say(conversation, "customer", QUESTION)
    answer = say(conversation, "bot", "Payments can take a few days to show.")

    for rating in ("down", "up", "down"):
        rate(answer, rating, django_capture_on_commit_callbacks)

    item = ReviewItem.objects.get()
    assert (item.kind, item.message_seq, item.question_seq) == ("not_helpful", 2, 1)
    assert (item.question, item.answer) == (QUESTION, answer.text)
    assert item.status == "open"


def test_a_helpful_answer_is_not_listed(
    conversation: Conversation, django_capture_on_commit_callbacks: Any
) -> None:
    say(conversation, "customer", QUESTION)
    rate(say(conversation, "bot", ANSWER), "up", django_capture_on_commit_callbacks)

    assert not ReviewItem.objects.exists()


def test_an_agents_messages_after_a_question_are_one_answer(
    conversation: Conversation, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(conversation, "customer", QUESTION)
        say(conversation, "system", "Dana from support joined.")
        say(conversation, "agent", "Yes:")
        say(conversation, "agent", "report it under Payments.")
        say(conversation, "customer", "And how long does it take?")
        say(conversation, "agent", "Two days.")

    items = ReviewItem.objects.order_by("message_seq")
    assert [(i.kind, i.question, i.answer) for i in items] == [
        ("agent_answer", QUESTION, "Yes:\n\nreport it under Payments."),
        ("agent_answer", "And how long does it take?", "Two days."),
    ]


def test_an_edited_draft_is_listed_as_an_edit_not_twice(
    conversation: Conversation, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(conversation, "customer", QUESTION)
        sent = say(conversation, "agent", ANSWER)
    actions.record_agent_edit(sent)

    item = ReviewItem.objects.get()
    assert (item.kind, item.answer) == ("agent_edit", ANSWER)


def test_a_held_draft_sent_with_edits_is_listed_as_an_edit(
    conversation: Conversation, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(conversation, "customer", QUESTION)
        Message.objects.create(
            conversation=conversation,
            seq=2,
            role="bot",
            text=ANSWER,
            metadata={"approved_by": 1, "edited": True},
        )
        Message.objects.create(
            conversation=conversation,
            seq=3,
            role="bot",
            text="Approved unchanged.",
            metadata={"approved_by": 1, "edited": False},
        )

    item = ReviewItem.objects.get()
    assert (item.kind, item.message_seq) == ("agent_edit", 2)
    assert (item.question, item.answer) == (QUESTION, ANSWER)


def run_action(client: Client, action: str, item: ReviewItem) -> None:
    response = client.post(
        "/admin/oversight/reviewitem/",
        {"action": action, helpers.ACTION_CHECKBOX_NAME: [item.pk]},
    )
    assert response.status_code == 302


@pytest.fixture
def item(conversation: Conversation) -> ReviewItem:
    return ReviewItem.objects.create(
        kind="agent_answer",
        conversation=conversation,
        message_seq=3,
        question_seq=1,
        question=QUESTION + " " + "x" * 300,
        answer=ANSWER,
    )


def test_an_item_becomes_an_inactive_article(
    admin_client: Client, item: ReviewItem
) -> None:
    run_action(admin_client, "make_article", item)

    article = Article.objects.get()
    assert article.title == item.question[:200]
    assert (article.body, article.example_questions) == (ANSWER, item.question)
    assert article.is_active is False
    item.refresh_from_db()
    assert item.status == "done"


def test_an_item_becomes_a_draft_guideline(
    admin_client: Client, item: ReviewItem, admin_user: User
) -> None:
    run_action(admin_client, "make_guideline", item)

    version = GuidelineVersion.objects.get()
    assert version.status == "draft"
    assert (version.kind, version.order, version.active) == ("policy", 100, True)
    assert ANSWER in version.text
    assert version.author == admin_user
    assert Guideline.objects.get().active is False
    item.refresh_from_db()
    assert item.status == "done"


def test_a_done_item_is_not_turned_into_anything_again(
    admin_client: Client, item: ReviewItem
) -> None:
    run_action(admin_client, "make_article", item)
    run_action(admin_client, "make_article", item)

    assert Article.objects.count() == 1
