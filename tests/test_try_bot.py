"""Admins try the bot in admin and see how it decides, and nothing is stored."""

from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from conversations.models import Conversation, Message, Visitor
from knowledge.models import Article
from support_bot import db

TRY = "admin:knowledge_try_bot"


@pytest.fixture
def pool_closed_after() -> Iterator[None]:
    yield
    # The preview ran its queries on the database pool's threads.
    db.close_pool()
    connections.close_all()


def test_it_shows_the_articles_and_the_decision(
    kb: dict[str, Article], admin_client: Client, pool_closed_after: None
) -> None:
    card = kb["How long does a new card take to arrive?"]

    response = admin_client.post(reverse(TRY), {"question": "when will my card arrive"})

    page = response.content.decode()
    assert "Decision: answer" in page
    assert reverse("admin:knowledge_article_change", args=[card.pk]) in page
    assert card.title in page
    assert 'id="try-bot-signals"' in page
    assert "3 to 5 working days" in page
    assert not Visitor.objects.exists()
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_a_follow_up_uses_the_previous_question(
    kb: dict[str, Article], admin_client: Client, pool_closed_after: None
) -> None:
    response = admin_client.post(
        reverse(TRY),
        {
            "question": "and how long does that take?",
            "previous": "I want to send money to my sister's account",
        },
    )

    page = response.content.decode()
    assert "Decision: answer" in page
    assert kb["How long do transfers take?"].title in page


def test_an_off_topic_question_is_escalated_with_reasons(
    kb: dict[str, Article], admin_client: Client, pool_closed_after: None
) -> None:
    response = admin_client.post(
        reverse(TRY), {"question": "what is the capital of Australia"}
    )

    page = response.content.decode()
    assert "Decision: escalate" in page
    assert 'id="try-bot-reasons"' in page


@pytest.mark.django_db
def test_settings_and_articles_pages_link_to_it(admin_client: Client) -> None:
    articles = admin_client.get(reverse("admin:knowledge_article_changelist"))
    settings_page = admin_client.get(reverse("admin:knowledge_botsettings_add"))

    assert reverse(TRY) in articles.content.decode()
    assert reverse(TRY) in settings_page.content.decode()
