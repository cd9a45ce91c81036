"""Fills the review list from writes made elsewhere, without touching them.

Sources: a "not helpful" rating, an agent's message, and a bot draft an agent
edited before sending. Each handler runs after the surrounding transaction
commits, so a failure here is logged and never rolls back the customer's
rating or the agent's message that triggered it.
"""

import logging
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save

from conversations.models import Feedback, Message

from . import actions

logger = logging.getLogger(__name__)


def connect() -> None:
    post_save.connect(_feedback_saved, sender=Feedback, dispatch_uid="oversight-fb")
    post_save.connect(_message_saved, sender=Message, dispatch_uid="oversight-msg")


def _feedback_saved(instance: Feedback, **kwargs: Any) -> None:
    if instance.rating == Feedback.Rating.DOWN:
        transaction.on_commit(
            partial(actions.record_not_helpful, instance), robust=True
        )


def _message_saved(instance: Message, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    if instance.role == Message.Role.AGENT:
        record = actions.record_agent_answer
    elif instance.role == Message.Role.BOT and instance.metadata.get("edited"):
        # A held bot draft that an agent changed before sending it
        # (escalation.actions.send_held_answer).
        record = actions.record_agent_edit
    else:
        return
    transaction.on_commit(partial(record, instance), robust=True)
