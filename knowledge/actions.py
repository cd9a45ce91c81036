"""Writes to the knowledge base that come from the rest of the product."""

from typing import Any

from django.db import transaction

from conversations.actions import ActionError
from conversations.models import Message

from .models import Article


def save_agent_answer(user: Any, conversation_id: Any, seq: int, title: str) -> Article:
    """Turn an agent's reply into an article, the customer's question its example.

    The article starts inactive when the title is new, so an admin reviews it
    before the bot answers from it.
    """
    answer = Message.objects.filter(
        conversation_id=conversation_id, seq=seq, role=Message.Role.AGENT
    ).first()
    if answer is None:
        raise ActionError("not_found", "Only an agent's reply can become an article.")
    question = (
        Message.objects.filter(
            conversation_id=conversation_id, seq__lt=seq, role=Message.Role.CUSTOMER
        )
        .order_by("-seq")
        .values_list("text", flat=True)
        .first()
    )
    with transaction.atomic():
        return Article.objects.create(
            title=title[:200],
            body=answer.text,
            example_questions=question or "",
            is_active=False,
        )
