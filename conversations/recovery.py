"""Questions whose answer was lost, answered again.

The web process that stores a question answers it, in a task of its event
loop (`conversations.replies`). When that process stops mid-answer (a crash,
an out-of-memory kill, a restart that did not wait) nothing else knows that
the question is unanswered: it is *stranded*. A question is stranded when the
conversation is with the bot, nothing stored after it answers it (see
`pending_question`), and nothing at all was stored for longer than any answer
can take (`STRANDED_ANSWER_SECONDS`).

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
from django.db.models import F, IntegerField, OuterRef, Q, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from . import actions
from .models import Conversation, Message

logger = logging.getLogger(__name__)

# The sweep looks this far back; an older stranded question is answered when
# its customer comes back (their widget resumes), not by the sweep, which
# then need not look through every conversation ever left with the bot.
SWEEP_WINDOW = timedelta(hours=1)
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Pending:
    """A question the bot owes an answer to."""

    conversation_id: Any
    seq: int
    # The conversation's last seq when this was read: a claim holds only if
    # nothing was stored since.
    last_seq: int
    # When it counts as stranded if it is still unanswered: an answer can
    # wait for the one before it, so the time runs from the newest message.
    stranded_at: datetime


def _bound() -> timedelta:
    return timedelta(seconds=settings.STRANDED_ANSWER_SECONDS)


# Enough to reach back past the answers to earlier questions that can follow
# the newest one (one per question asked while an answer was being written).
OWED_LOOKBACK = 20


def pending_question(
    conversation_id: Any, *, after_hand_back: bool = False
) -> Pending | None:
    """The question the conversation's bot still owes an answer to, if any.

    That is its newest customer message, when the conversation is with the
    bot and nothing stored after it answers it: an answer to it (or its
    hold, or its withdrawal, which carry its seq) or a person's message.
    The bot's answers to earlier questions can follow it (questions are
    answered one at a time), and so can notices that answer nothing (a
    person joined).

    A person handing the conversation back to the bot closes what was asked
    before: they read it. Only right after the hand-back, with
    `after_hand_back`, is such a message offered to the bot, which answers it
    only when it is sure (`replies.start_reply(only_if_sure=True)`), and only
    when it was asked after the conversation was handed to people: one asked
    before was the bot's to answer then, and that answer may still be on its
    way from another web process.
    """
    rows = list(
        Message.objects.filter(
            conversation_id=conversation_id,
            conversation__status=Conversation.Status.BOT,
        )
        .order_by("-seq")
        .values_list(
            "seq",
            "role",
            "metadata__reply_to",
            "created_at",
            f"metadata__{actions.HANDED_BACK}",
        )[:OWED_LOOKBACK]
    )
    question = next((i for i, row in enumerate(rows) if row[1] == "customer"), None)
    if question is None:
        return None
    seq = rows[question][0]
    for _, role, reply_to, _, handed_back in rows[:question]:
        if isinstance(reply_to, int) and reply_to >= seq:
            return None  # answered, held or withdrawn
        if role == Message.Role.AGENT or (
            role == Message.Role.BOT and not isinstance(reply_to, int)
        ):
            return None  # a person (or an answer of unknown origin) replied
        if handed_back and not after_hand_back:
            return None
    if after_hand_back and not _asked_while_with_people(
        conversation_id, rows[question][3]
    ):
        return None
    last_seq, newest_at = rows[0][0], rows[0][3]
    return Pending(conversation_id, seq, last_seq, newest_at + _bound())


def _asked_while_with_people(conversation_id: Any, asked_at: datetime) -> bool:
    from escalation.models import Escalation

    started = (
        Escalation.objects.filter(conversation_id=conversation_id)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return started is not None and asked_at > started


def stranded_questions(now: datetime) -> list[Pending]:
    """Questions stranded within the sweep's window, oldest first."""
    bound = _bound()
    newest_question = Message.objects.filter(
        conversation=OuterRef("conversation"), role=Message.Role.CUSTOMER
    ).order_by("-seq")
    candidates = (
        # Each conversation's newest message, stored when the conversation
        # last changed: that bounds the search by an indexed status and the
        # conversation's own timestamp.
        Message.objects.filter(
            conversation__status=Conversation.Status.BOT,
            conversation__updated_at__gte=now - bound - SWEEP_WINDOW,
            conversation__updated_at__lte=now - bound,
            seq=F("conversation__last_seq"),
            created_at__lte=now - bound,
        )
        .annotate(
            reply_to=Cast(KeyTextTransform("reply_to", "metadata"), IntegerField()),
            question=Subquery(newest_question.values("seq")[:1]),
        )
        # A question, an answer to an earlier one than the newest, or a
        # notice that answers nothing; pending_question decides.
        .filter(
            Q(role=Message.Role.CUSTOMER)
            | Q(role=Message.Role.BOT, reply_to__lt=F("question"))
            | Q(role=Message.Role.SYSTEM, reply_to__isnull=True)
        )
        .order_by("created_at")
        .values_list("conversation_id", flat=True)[:SWEEP_BATCH]
    )
    found = (pending_question(c) for c in candidates)
    return [p for p in found if p is not None and p.stranded_at <= now]


def claim(pending: Pending) -> bool:
    """Take up answering `pending` again; False when it is not stranded (it
    was answered, the customer wrote again, a person took over) or someone
    else took it up less than the bound ago.

    The claim is `actions.claim_answer`: of two at once, one wins.
    """
    now = timezone.now()
    if now < pending.stranded_at:
        return False
    claimed = actions.claim_answer(
        pending.conversation_id, pending.last_seq, now, expired_before=now - _bound()
    )
    if claimed:
        logger.warning(
            "Answering question %s again: its answer was lost",
            pending.seq,
            extra={"conversation_id": str(pending.conversation_id)},
        )
    return bool(claimed)


async def answer_owed(conversation_id: Any, *, after_hand_back: bool = False) -> None:
    """Answer the question the bot owes now, if any: after the bot got the
    conversation back (an approved draft, a hand-back) with a question the
    customer asked while a person had it.

    After a hand-back the customer's last message was often for the person
    ("thanks, that's all"): the bot answers it only when it is sure, and
    otherwise says nothing rather than hand the conversation straight back.
    """
    from support_bot.db import db_async

    from .replies import answering_here, start_reply

    pending = await db_async(pending_question)(
        conversation_id, after_hand_back=after_hand_back
    )
    if pending is not None and not answering_here(conversation_id):
        start_reply(conversation_id, pending.seq, None, only_if_sure=after_hand_back)


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
