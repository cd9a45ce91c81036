"""Handing conversations from the bot to people.

The queue, routing and the agent console build on `escalate_locked`: whatever
the reason, a handover is one row here and one status change.
"""

import logging
from typing import Any

from conversations.actions import append_system_message, set_status
from conversations.models import Conversation

from .models import Escalation

logger = logging.getLogger(__name__)

WAITING_NOTICE = (
    "I've asked a person from our support team to take over. "
    "They'll reply right here; you can keep writing in the meantime."
)


def escalate_locked(
    conversation: Conversation,
    reason: str,
    *,
    detail: str = "",
    confidence: Any = None,
    announce: bool = True,
) -> Escalation:
    """Hand `conversation` to people. Precondition: its row is locked.

    `announce` adds a notice for the customer; callers whose own message
    already says a person is coming pass False.
    """
    escalation = Escalation.objects.create(
        conversation=conversation,
        reason=reason,
        detail=detail[:255],
        confidence=confidence if isinstance(confidence, int | float) else None,
    )
    set_status(conversation, Conversation.Status.WAITING, reason=reason)
    if announce:
        append_system_message(conversation, WAITING_NOTICE)
    logger.info(
        "Conversation escalated: %s",
        reason,
        extra={"conversation_id": str(conversation.id), "reason": reason},
    )
    return escalation
