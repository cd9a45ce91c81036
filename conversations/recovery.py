"""Questions whose answer was lost, answered again.

The web process that stores a question answers it, in a task of its event
loop (`conversations.replies`). When that process stops mid-answer (a crash,
an out-of-memory kill, a restart that did not wait) nothing else knows that
the question is unanswered: it is *stranded*. A question is stranded when the
conversation is with the bot, the question is its newest message, and it is
older than any answer can take (`STRANDED_ANSWER_SECONDS`).

A stranded question is answered by whoever sees it first: a widget socket of
the conversation that resumes, or that resumed while the question was still
being answered and is open when the bound passes, or the Celery worker's
periodic sweep. A claim on the conversation's row lets only one of them answer
it; a claim whose answer was lost in turn expires after the same bound.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from .models import Conversation, Message

logger = logging.getLogger(__name__)

# The sweep looks this far back; an older stranded question is answered when
# its customer comes back (their widget resumes), not by the sweep, which
# then need not look through every conversation ever left with the bot.
SWEEP_WINDOW = timedelta(hours=1)
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Pending:
    """The conversation's newest message: a question the bot has not answered."""

    conversation_id: Any
    seq: int
    # When it counts as stranded if it is still unanswered.
    stranded_at: datetime


def _bound() -> timedelta:
    return timedelta(seconds=settings.STRANDED_ANSWER_SECONDS)


def pending_question(conversation_id: Any) -> Pending | None:
    """The conversation's unanswered question, if the bot owes one."""
    row = (
        Message.objects.filter(
            conversation_id=conversation_id,
            conversation__status=Conversation.Status.BOT,
            seq=F("conversation__last_seq"),
            role=Message.Role.CUSTOMER,
        )
        .values_list("seq", "created_at")
        .first()
    )
    if row is None:
        return None
    seq, created_at = row
    return Pending(conversation_id, seq, created_at + _bound())


def stranded_questions(now: datetime) -> list[Pending]:
    """Questions stranded within the sweep's window, oldest first."""
    bound = _bound()
    rows = (
        Message.objects.filter(
            conversation__status=Conversation.Status.BOT,
            # The newest message of its conversation, stored when the
            # conversation last changed: that bounds the search by an
            # indexed status and the conversation's own timestamp.
            conversation__updated_at__gte=now - bound - SWEEP_WINDOW,
            conversation__updated_at__lte=now - bound,
            seq=F("conversation__last_seq"),
            role=Message.Role.CUSTOMER,
            created_at__lte=now - bound,
        )
        .order_by("created_at")
        .values_list("conversation_id", "seq", "created_at")[:SWEEP_BATCH]
    )
    return [Pending(c, seq, created_at + bound) for c, seq, created_at in rows]


def claim(pending: Pending) -> bool:
    """Take up answering `pending` again; False when it is not stranded (it
    was answered, the customer wrote again, a person took over) or someone
    else took it up less than the bound ago.

    One UPDATE whose conditions are all on the conversation's own row, so
    that of two claims at once the second, re-checked after the first
    commits, finds the row claimed.
    """
    now = timezone.now()
    if now < pending.stranded_at:
        return False
    claimed = (
        Conversation.objects.filter(
            pk=pending.conversation_id,
            status=Conversation.Status.BOT,
            last_seq=pending.seq,
        )
        .filter(
            Q(answer_claimed_at__isnull=True) | Q(answer_claimed_at__lte=now - _bound())
        )
        .update(answer_claimed_at=now)
    )
    if claimed:
        logger.warning(
            "Answering question %s again: its answer was lost",
            pending.seq,
            extra={"conversation_id": str(pending.conversation_id)},
        )
    return bool(claimed)


def answer_stranded() -> int:
    """The sweep: answer the stranded questions of the window, here and now.

    Runs in the Celery worker; the answers reach the conversation's sockets
    through the channel layer, and are stored like any other.
    """
    from support_bot.bot.engines import run_sync
    from support_bot.live import flush

    from .replies import answer

    async def answer_and_send(pending: Pending) -> None:
        await answer(pending.conversation_id, pending.seq)
        await flush()

    answered = 0
    for pending in stranded_questions(timezone.now()):
        if claim(pending):
            run_sync(answer_and_send, pending)
            answered += 1
    return answered
