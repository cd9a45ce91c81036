"""Conversations written straight to the database at chosen moments.

The figures of the dashboard and the alerts depend on when things happened;
these helpers store rows as if they had happened then.
"""

import datetime
from dataclasses import dataclass, field
from typing import Any

from conversations.models import Conversation, Feedback, Message, Visitor
from escalation.models import Escalation
from oversight.models import ConversationRating


@dataclass
class Turn:
    role: str
    # Minutes after the conversation started.
    at: float
    text: str = "…"
    metadata: dict[str, Any] = field(default_factory=dict)
    feedback: str | None = None


@dataclass
class Script:
    started: datetime.datetime
    turns: list[Turn] = field(default_factory=list)
    # (reason, minutes after the start)
    escalations: list[tuple[str, float]] = field(default_factory=list)
    rating: int | None = None


def bot(at: float, **metadata: Any) -> Turn:
    feedback = metadata.pop("feedback", None)
    return Turn("bot", at, "An answer.", metadata, feedback)


def customer(at: float, text: str = "A question?") -> Turn:
    return Turn("customer", at, text)


def agent(at: float, text: str = "A person's answer.") -> Turn:
    return Turn("agent", at, text)


def store(script: Script) -> Conversation:
    visitor = Visitor.objects.create(token_hash=Visitor.new_token())
    conversation = Conversation.objects.create(
        visitor=visitor, last_seq=len(script.turns)
    )
    Conversation.objects.filter(pk=conversation.pk).update(created_at=script.started)
    for seq, turn in enumerate(script.turns, start=1):
        at = script.started + datetime.timedelta(minutes=turn.at)
        message = Message.objects.create(
            conversation=conversation,
            seq=seq,
            role=turn.role,
            text=turn.text,
            metadata=turn.metadata,
        )
        Message.objects.filter(pk=message.pk).update(created_at=at)
        if turn.feedback:
            Feedback.objects.create(message=message, rating=turn.feedback)
            Feedback.objects.filter(message=message).update(created_at=at)
    for reason, minutes in script.escalations:
        escalation = Escalation.objects.create(conversation=conversation, reason=reason)
        at = script.started + datetime.timedelta(minutes=minutes)
        Escalation.objects.filter(pk=escalation.pk).update(created_at=at)
    if script.rating is not None:
        ConversationRating.objects.create(
            conversation=conversation, score=script.rating
        )
    return conversation
