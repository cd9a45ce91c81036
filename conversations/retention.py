"""How long we keep what customers wrote, and giving one visitor's data back.

Retention runs from a periodic task: conversations last updated before
RETENTION_DAYS ago are deleted, with everything hanging off them, or
anonymised in place (RETENTION_MODE). Export and erase serve one visitor's
request to see or remove their data; admin actions and management commands
call them.
"""

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from escalation.models import Escalation, InternalNote
from support_bot.privacy import redact

from .models import Conversation, Feedback, Message, Visitor

logger = logging.getLogger(__name__)

# Rows per transaction, so a first run over years of history neither holds
# locks for minutes nor loads every row into memory at once.
BATCH = 500
# Marks a message whose text has been anonymised, so later runs skip it.
ANONYMISED = "anonymised"


@dataclass(frozen=True)
class RetentionResult:
    mode: str
    conversations: int = 0
    messages: int = 0
    visitors: int = 0


def apply_retention(now: datetime.datetime) -> RetentionResult:
    """Delete or anonymise what is older than RETENTION_DAYS before `now`."""
    days: int = settings.RETENTION_DAYS
    mode: str = settings.RETENTION_MODE
    if days == 0:
        return RetentionResult(mode="keep")

    cutoff = now - datetime.timedelta(days=days)
    remove = _delete_before if mode == "delete" else _anonymise_before
    result = remove(cutoff)
    logger.info(
        "Retention (%s, %d days): %d conversations, %d messages, %d visitors",
        result.mode,
        days,
        result.conversations,
        result.messages,
        result.visitors,
    )
    return result


def _idle_visitors(cutoff: datetime.datetime) -> QuerySet[Visitor]:
    """Visitors not seen since `cutoff` and with no conversation after it."""
    recent = Conversation.objects.filter(updated_at__gte=cutoff)
    return Visitor.objects.filter(last_seen_at__lt=cutoff).exclude(
        pk__in=recent.values("visitor_id")
    )


def _delete_before(cutoff: datetime.datetime) -> RetentionResult:
    conversations = messages = 0
    old = Conversation.objects.filter(updated_at__lt=cutoff)
    while ids := list(old.values_list("pk", flat=True)[:BATCH]):
        # Messages, feedback, escalations and notes go by cascade.
        _, deleted = Conversation.objects.filter(pk__in=ids).delete()
        conversations += len(ids)
        messages += deleted.get(Message._meta.label, 0)
    visitors, _ = _idle_visitors(cutoff).filter(conversations__isnull=True).delete()
    return RetentionResult("delete", conversations, messages, visitors)


def _anonymise_before(cutoff: datetime.datetime) -> RetentionResult:
    """Redact texts and clear summaries; counts and metrics keep their rows.

    Only messages not anonymised yet are read, so a daily run costs what the
    day added, not the whole history. Updates go through querysets, which
    leave `updated_at` alone: an anonymised conversation does not look active.
    """
    touched: set[Any] = set()
    messages = 0
    # The mark is only ever set, so "not anonymised" is "no mark"; this also
    # keeps the lookup away from NULL comparisons on a missing JSON key.
    pending = Message.objects.filter(
        conversation__updated_at__lt=cutoff, **{f"metadata__{ANONYMISED}__isnull": True}
    )
    while batch := list(pending.order_by("pk")[:BATCH]):
        with transaction.atomic():
            for message in batch:
                _anonymise_message(message)
            Message.objects.bulk_update(batch, ["text", "metadata"])
        touched.update(message.conversation_id for message in batch)
        messages += len(batch)

    with transaction.atomic():
        _anonymise_conversations(touched)
        visitors = _idle_visitors(cutoff).exclude(email="").update(email="")
    return RetentionResult("anonymise", len(touched), messages, visitors)


def _anonymise_message(message: Message) -> None:
    message.text = redact(message.text)
    # An interrupted answer keeps its partial text for the agent.
    partial = message.metadata.get("partial_text")
    if isinstance(partial, str):
        message.metadata["partial_text"] = redact(partial)
    message.metadata[ANONYMISED] = True


def _anonymise_conversations(ids: set[Any]) -> None:
    Conversation.objects.filter(pk__in=ids).exclude(summary="").update(summary="")
    # Escalation summaries quote the customer; notes are agents' words about
    # the customer, so they are redacted like messages.
    Escalation.objects.filter(conversation_id__in=ids).update(summary="")
    notes = list(InternalNote.objects.filter(conversation_id__in=ids))
    for note in notes:
        note.text = redact(note.text)
    InternalNote.objects.bulk_update(notes, ["text"], batch_size=BATCH)


# --- One visitor's data -------------------------------------------------------


def export_visitor(visitor_id: Any) -> dict[str, Any]:
    """Everything stored about one visitor, as JSON-ready data.

    The token hash is left out: it identifies a browser to us, tells the
    visitor nothing, and would help anyone holding the export guess at it.
    Internal notes are included: they are personal data about the visitor.
    """
    visitor = Visitor.objects.get(pk=visitor_id)
    conversations = list(visitor.conversations.order_by("created_at"))
    ids = [c.pk for c in conversations]
    messages = _by_conversation(
        Message.objects.filter(conversation_id__in=ids).select_related("feedback")
    )
    escalations = _by_conversation(
        Escalation.objects.filter(conversation_id__in=ids).order_by("created_at")
    )
    notes = _by_conversation(
        InternalNote.objects.filter(conversation_id__in=ids).order_by("created_at")
    )
    return {
        "visitor": {
            "id": str(visitor.pk),
            "email": visitor.email,
            "created_at": visitor.created_at.isoformat(),
            "last_seen_at": visitor.last_seen_at.isoformat(),
        },
        "conversations": [
            {
                "id": str(c.pk),
                "status": c.status,
                "created_at": c.created_at.isoformat(),
                "updated_at": c.updated_at.isoformat(),
                "summary": c.summary,
                "messages": [_message(m) for m in messages.get(c.pk, [])],
                "escalations": [_escalation(e) for e in escalations.get(c.pk, [])],
                "notes": [
                    {"text": n.text, "created_at": n.created_at.isoformat()}
                    for n in notes.get(c.pk, [])
                ],
            }
            for c in conversations
        ],
    }


def _by_conversation(rows: Iterable[Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.conversation_id, []).append(row)
    return grouped


def _message(message: Message) -> dict[str, Any]:
    try:
        feedback: Feedback | None = message.feedback
    except Feedback.DoesNotExist:
        feedback = None
    return {
        "seq": message.seq,
        "role": message.role,
        "text": message.text,
        "created_at": message.created_at.isoformat(),
        "metadata": message.metadata,
        "feedback": (
            {"rating": feedback.rating, "created_at": feedback.created_at.isoformat()}
            if feedback
            else None
        ),
    }


def _escalation(escalation: Escalation) -> dict[str, Any]:
    times = ("created_at", "assigned_at", "claimed_at", "closed_at")
    return {
        "reason": escalation.reason,
        "detail": escalation.detail,
        "status": escalation.status,
        "summary": escalation.summary,
        **{
            name: value.isoformat() if (value := getattr(escalation, name)) else None
            for name in times
        },
    }


@dataclass(frozen=True)
class Erased:
    conversations: int
    messages: int


def erase_visitor(visitor_id: Any) -> Erased:
    """Delete a visitor and everything of theirs, by cascade.

    A widget still open in their browser is closed, forgets the visitor's
    token and starts afresh as a new one; one that was closed finds no
    visitor on its next connection and does the same.
    """
    with transaction.atomic():
        visitor = Visitor.objects.select_for_update().get(pk=visitor_id)
        erased = Erased(
            conversations=visitor.conversations.count(),
            messages=Message.objects.filter(conversation__visitor=visitor).count(),
        )
        visitor.delete()  # closes their open widgets (signals.py)
    logger.info(
        "Visitor erased: %d conversations, %d messages",
        erased.conversations,
        erased.messages,
        extra={"visitor_id": str(visitor_id)},
    )
    return erased


def visitors_of(conversations: QuerySet[Conversation]) -> QuerySet[Visitor]:
    return Visitor.objects.filter(pk__in=conversations.values("visitor_id"))
