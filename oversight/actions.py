"""Every write of oversight: conversation ratings and the review list.

The review list is filled through signals (signals.py) from a "not helpful"
rating, an agent's answer, and a bot draft an agent edited before sending.
"""

import logging
from typing import Any

from django.db import IntegrityError, transaction

from conversations.actions import ActionError
from conversations.models import Feedback, Message, Visitor
from knowledge.guidelines import GuidelineEdit, save_draft
from knowledge.models import Article, Guideline

from .models import ConversationRating, ReviewItem

logger = logging.getLogger(__name__)

ARTICLE_TITLE_CHARS = 200
# After the published rules, so a guideline learnt from one answer never
# overrides one an admin wrote on purpose.
GUIDELINE_ORDER = 100


def rate_conversation(visitor: Visitor, score: int, comment: str) -> ConversationRating:
    """Store the visitor's rating of their latest conversation.

    Precondition: `score` is 1 to 5 and `comment` at most 1000 characters
    (`conversations.protocol.parse_rate` checks both).
    """
    conversation = visitor.conversations.order_by("-created_at").first()
    if conversation is None:
        raise ActionError("not_found", "There is no conversation to rate yet.")
    rating, _ = ConversationRating.objects.update_or_create(
        conversation=conversation, defaults={"score": score, "comment": comment}
    )
    logger.info(
        "Conversation rated %s",
        score,
        extra={"conversation_id": str(conversation.id)},
    )
    return rating


def _question_before(conversation_id: Any, seq: int) -> Message | None:
    return (
        Message.objects.filter(
            conversation_id=conversation_id, seq__lt=seq, role=Message.Role.CUSTOMER
        )
        .order_by("-seq")
        .first()
    )


def _add_item(kind: str, message: Message, answer: str) -> ReviewItem | None:
    question = _question_before(message.conversation_id, message.seq)
    try:
        with transaction.atomic():
            item = ReviewItem.objects.create(
                kind=kind,
                conversation_id=message.conversation_id,
                message_seq=message.seq,
                question_seq=question.seq if question else None,
                question=question.text if question else "",
                answer=answer,
            )
    except IntegrityError:
        # Already listed: a rating changed back and forth, or a retry.
        return None
    logger.info(
        "Review item %s added",
        kind,
        extra={"conversation_id": str(message.conversation_id), "review_item": item.pk},
    )
    return item


def record_not_helpful(feedback: Feedback) -> ReviewItem | None:
    if feedback.rating != Feedback.Rating.DOWN:
        return None
    message = feedback.message
    return _add_item(ReviewItem.Kind.NOT_HELPFUL, message, message.text)


def record_agent_answer(message: Message) -> ReviewItem | None:
    """List an agent's message as the answer to the customer's latest question.

    Several agent messages after one question are one answer: they are joined
    into the open item instead of each becoming an item of its own.
    """
    listed = ReviewItem.objects.filter(
        conversation_id=message.conversation_id, message_seq=message.seq
    )
    if listed.exists():
        # Already listed as an edited draft by `record_agent_edit`.
        return None
    question = _question_before(message.conversation_id, message.seq)
    if question is not None:
        with transaction.atomic():
            open_item = (
                ReviewItem.objects.select_for_update()
                .filter(
                    kind=ReviewItem.Kind.AGENT_ANSWER,
                    conversation_id=message.conversation_id,
                    question_seq=question.seq,
                    status=ReviewItem.Status.OPEN,
                )
                .first()
            )
            if open_item is not None:
                open_item.answer = f"{open_item.answer}\n\n{message.text}"
                open_item.save(update_fields=["answer"])
                return open_item
    return _add_item(ReviewItem.Kind.AGENT_ANSWER, message, message.text)


def record_agent_edit(message: Message) -> ReviewItem | None:
    """List a reply that started as a bot draft and was changed by an agent.

    Edited held answers (bot messages with `metadata["edited"]`) are listed by
    the signal in signals.py. Another way of sending an edited draft, stored
    as an agent message, calls this after storing it: the message is then
    listed once, as an edit, whether or not the signal that lists agent
    answers got to it first.
    """
    relisted = ReviewItem.objects.filter(
        kind=ReviewItem.Kind.AGENT_ANSWER,
        conversation_id=message.conversation_id,
        message_seq=message.seq,
    ).update(kind=ReviewItem.Kind.AGENT_EDIT)
    if relisted:
        return ReviewItem.objects.get(
            kind=ReviewItem.Kind.AGENT_EDIT,
            conversation_id=message.conversation_id,
            message_seq=message.seq,
        )
    return _add_item(ReviewItem.Kind.AGENT_EDIT, message, message.text)


def article_from_review(item: ReviewItem) -> Article:
    """An inactive article from the item, for an admin to finish and switch on."""
    with transaction.atomic():
        article = Article.objects.create(
            title=_title(item),
            body=item.answer,
            example_questions=" ".join(item.question.split()),
            is_active=False,
        )
        _mark_done(item)
    logger.info(
        "Review item %s became article %s",
        item.pk,
        article.pk,
        extra={"conversation_id": str(item.conversation_id)},
    )
    return article


def guideline_from_review(item: ReviewItem, author: Any) -> Guideline:
    """A draft guideline from the item; nothing reaches the bot until published."""
    text = f'When a customer asks "{_title(item)}": {item.answer}'
    with transaction.atomic():
        version = save_draft(
            Guideline(),
            GuidelineEdit(text, Guideline.Kind.POLICY, GUIDELINE_ORDER, True),
            author,
        )
        _mark_done(item)
    return version.guideline


def _title(item: ReviewItem) -> str:
    title = " ".join(item.question.split()) or f"Answer from {item.conversation}"
    return title[:ARTICLE_TITLE_CHARS]


def _mark_done(item: ReviewItem) -> None:
    item.status = ReviewItem.Status.DONE
    item.save(update_fields=["status"])
