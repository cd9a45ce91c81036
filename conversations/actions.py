"""Every write to conversations goes through here.

These functions are synchronous and open their own transactions; async callers
run them through `support_bot.db.db_async`. Live events are sent only after the
transaction commits, so no socket ever sees a message that was rolled back.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from support_bot import live, metrics
from support_bot.bot.config import get_bot_config
from support_bot.bot.embeddings import count_tokens
from support_bot.bot.engine import EngineError, Turn
from support_bot.bot.engines import get_engine, run_sync
from support_bot.bot.memory import StoredTurn, split_for_folding
from support_bot.celery import enqueue
from support_bot.privacy import redact, redact_turns

from . import rows
from .models import Conversation, Feedback, Message, Visitor, hash_token

logger = logging.getLogger(__name__)


class ActionError(Exception):
    """A request the caller must refuse; `code` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VisitorSession:
    visitor: Visitor
    token: str
    conversation: Conversation | None
    is_new: bool
    # The streams of the conversation's newest stored messages: their pieces
    # and typing notices can still be on their way on the channel layer.
    settled_streams: tuple[str, ...] = ()


# More than enough: streamed pieces trail their stored answer by milliseconds.
SETTLED_STREAMS = 16


@dataclass(frozen=True)
class PostedMessage:
    message: Message
    conversation: Conversation
    created: bool
    conversation_created: bool


def open_visitor_session(token: str | None) -> VisitorSession:
    """The visitor behind `token`, or a new visitor when it matches nobody."""
    if token:
        visitor = Visitor.objects.filter(token_hash=hash_token(token)).first()
        if visitor is not None:
            Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=timezone.now())
            conversation = visitor.conversations.order_by("-created_at").first()
            streams: tuple[str, ...] = ()
            if conversation is not None:
                newest = conversation.messages.order_by("-seq").values_list(
                    "metadata__stream", flat=True
                )[:SETTLED_STREAMS]
                streams = tuple(s for s in newest if isinstance(s, str) and s)
            return VisitorSession(visitor, token, conversation, False, streams)

    token = Visitor.new_token()
    visitor = Visitor.objects.create(token_hash=hash_token(token))
    return VisitorSession(visitor, token, None, is_new=True)


def lock_conversation(conversation_id: Any) -> Conversation:
    """Lock a conversation's row for the rest of the transaction.

    Every change of seq or owner holds this lock; an id that names no
    conversation is refused as `not_found`.
    """
    try:
        conversation = rows.lock_conversation_row(conversation_id)
    except (ValueError, ValidationError):
        conversation = None
    if conversation is None:
        raise ActionError("not_found", "There is no such conversation.")
    return conversation


def append_message(
    conversation: Conversation,
    role: str,
    text: str,
    *,
    client_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Message:
    """Store a message under the lock the caller holds on `conversation`.

    Precondition: inside transaction.atomic() with `conversation` locked by
    `lock_conversation`, which is what keeps `seq` gap-free.
    """
    conversation.last_seq += 1
    message = rows.insert_message(
        conversation,
        seq=conversation.last_seq,
        role=role,
        text=text,
        client_id=client_id,
        token_count=count_tokens(text),
        metadata=metadata or {},
    )
    conversation.memory_tokens += message.token_count
    rows.save_counters(conversation)
    _appended(conversation, message)
    return message


def _append_at_once(
    role: str,
    text: str,
    *,
    conversation_id: Any = None,
    latest_of_visitor: Any = None,
    open_only: bool = False,
    client_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[Conversation, Message] | None:
    """`append_message` with its lock, in one statement and no transaction of
    the caller's (see `rows.append_at_once`); None when it cannot be done so."""
    appended = rows.append_at_once(
        conversation_id=conversation_id,
        latest_of_visitor=latest_of_visitor,
        open_only=open_only,
        role=role,
        text=text,
        client_id=client_id,
        token_count=count_tokens(text),
        metadata=metadata or {},
    )
    if appended is not None:
        _appended(*appended)
    return appended


def _appended(conversation: Conversation, message: Message) -> None:
    """What follows every stored message, once it is committed."""
    transaction.on_commit(partial(metrics.message_stored, message.role))
    live.send_after_commit(
        live.conversation_group(conversation.id),
        {
            "type": "conversation.message",
            "frame": message.as_frame(),
            # For agents' consoles; the widget's consumer never forwards it.
            "metadata": message.metadata,
        },
    )
    _fold_memory_when_over_budget(conversation)


def _fold_memory_when_over_budget(conversation: Conversation) -> None:
    from support_bot.bot.memory import unsummarized_tokens_over_budget

    if unsummarized_tokens_over_budget(conversation):
        from .tasks import summarize_conversation_task

        conversation_id = str(conversation.id)
        transaction.on_commit(
            lambda: enqueue(summarize_conversation_task, conversation_id)
        )


def _current_conversation_locked(visitor: Visitor) -> tuple[Conversation, bool]:
    """The visitor's latest conversation, locked; started if there is none.

    With no conversation yet there is no conversation row to lock, and two
    tabs would each start one: then the visitor row is locked, and whoever
    gets it second finds the first one's conversation. Nothing locks a
    conversation and then its visitor, so the two locks cannot deadlock.
    """
    conversation = _latest_conversation_locked(visitor)
    if conversation is not None:
        return conversation, False
    Visitor.objects.select_for_update(no_key=True).filter(pk=visitor.pk).first()
    conversation = _latest_conversation_locked(visitor)
    if conversation is not None:
        return conversation, False
    conversation = Conversation.objects.create(visitor=visitor)
    transaction.on_commit(metrics.conversation_started)
    live.send_after_commit(
        live.visitor_group(visitor.id),
        {"type": "visitor.conversation", "conversation": str(conversation.id)},
    )
    return conversation, True


def _latest_conversation_locked(visitor: Visitor) -> Conversation | None:
    return rows.lock_latest_conversation(visitor.pk)


def post_customer_message(visitor: Visitor, client_id: str, text: str) -> PostedMessage:
    """Store a customer message once per `client_id`.

    The visitor's latest conversation takes the message; a closed one is
    reopened with the bot, keeping its history. With no conversation yet, one
    is started.
    """
    # Most messages go to an open conversation: one statement, where the
    # database can (the rest below is the general way).
    appended = _append_at_once(
        Message.Role.CUSTOMER,
        text,
        latest_of_visitor=visitor.pk,
        open_only=True,
        client_id=client_id,
    )
    if appended is not None:
        return PostedMessage(appended[1], appended[0], True, False)
    with transaction.atomic():
        conversation, conversation_created = _current_conversation_locked(visitor)
        # A message sent again (a retry after a reconnect) breaks the unique
        # client_id and rolls all of this back; see post_customer_message_once.
        if conversation.status == Conversation.Status.CLOSED:
            set_status(conversation, Conversation.Status.BOT, reason="reopened")

        message = append_message(
            conversation, Message.Role.CUSTOMER, text, client_id=client_id
        )
    return PostedMessage(message, conversation, True, conversation_created)


def post_customer_message_once(
    visitor: Visitor, client_id: str, text: str
) -> PostedMessage:
    """`post_customer_message`, storing each `client_id` once.

    A message sent again (the widget resends what was not acknowledged, from
    one tab or two) breaks the unique constraint on client_id; the stored one
    is then read and returned. Resends are rare, so the insert is tried first
    rather than looked up before every message.
    """
    try:
        return post_customer_message(visitor, client_id, text)
    except IntegrityError:
        message = Message.objects.select_related("conversation").get(
            conversation__visitor=visitor, client_id=client_id
        )
        return PostedMessage(message, message.conversation, False, False)


def set_status(conversation: Conversation, status: str, *, reason: str = "") -> None:
    """Change who owns a conversation. Precondition: the row is locked."""
    if conversation.status == status:
        return
    conversation.status = status
    conversation.save(update_fields=["status", "updated_at"])
    live.send_after_commit(
        live.conversation_group(conversation.id),
        {
            "type": "conversation.status",
            "frame": {
                "type": "status",
                "conversation": str(conversation.id),
                "status": status,
                "reason": reason or None,
                "agent": None,
            },
        },
    )


def store_bot_reply(
    conversation_id: Any,
    text: str,
    metadata: dict[str, Any],
    *,
    escalate_reason: str | None = None,
    escalate_detail: str = "",
) -> Message:
    """Store the bot's one reply to a customer message, complete or interrupted.

    With `escalate_reason`, the conversation is handed to people in the same
    transaction, so the customer never sees the apology without the handover.
    An answer that was being written when a person took over is still stored
    (the customer watched it stream), but hands nothing over again.
    """
    from escalation.actions import escalate_locked

    metadata = {"author": {"name": get_bot_config().name}, **metadata}
    if not escalate_reason:
        appended = _append_at_once(
            Message.Role.BOT, text, conversation_id=conversation_id, metadata=metadata
        )
        if appended is not None:
            return appended[1]
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        message = append_message(
            conversation, Message.Role.BOT, text, metadata=metadata
        )
        if escalate_reason:
            escalate_locked(
                conversation,
                escalate_reason,
                detail=escalate_detail,
                confidence=metadata.get("confidence"),
                announce=False,
            )
    return message


def claim_answer(
    conversation_id: Any, last_seq: int, now: datetime, *, expired_before: datetime
) -> bool:
    """Take up answering a conversation again (conversations/recovery.py).

    Holds while the conversation is with the bot, nothing was stored since
    `last_seq`, and no claim was made after `expired_before`. One UPDATE whose
    conditions are all on the row itself, so that of two claims at once the
    second, re-checked after the first commits, finds the row claimed.
    """
    claimed = (
        Conversation.objects.filter(
            pk=conversation_id, status=Conversation.Status.BOT, last_seq=last_seq
        )
        .filter(
            Q(answer_claimed_at__isnull=True) | Q(answer_claimed_at__lte=expired_before)
        )
        .update(answer_claimed_at=now)
    )
    return bool(claimed)


# The metadata key of the notice that a person handed the conversation back
# to the bot (recovery.pending_question reads it).
HANDED_BACK = "handed_back"


def append_system_message(
    conversation: Conversation, text: str, metadata: dict[str, Any] | None = None
) -> Message:
    """A notice from the product itself. Precondition: the row is locked."""
    return append_message(conversation, Message.Role.SYSTEM, text, metadata=metadata)


def request_human(visitor: Visitor) -> Conversation:
    """The customer asked for a person."""
    from escalation.actions import escalate_locked
    from escalation.models import Escalation

    with transaction.atomic():
        conversation, _ = _current_conversation_locked(visitor)
        if conversation.status in (
            Conversation.Status.WAITING,
            Conversation.Status.HUMAN,
        ):
            return conversation
        escalate_locked(conversation, Escalation.Reason.CUSTOMER_REQUEST)
    return conversation


def record_feedback(visitor: Visitor, seq: int, rating: str) -> Feedback:
    message = (
        Message.objects.filter(
            conversation__visitor=visitor, seq=seq, role=Message.Role.BOT
        )
        .order_by("-conversation__created_at")
        .first()
    )
    if message is None:
        raise ActionError("not_found", "There is no bot answer with that number.")
    feedback, _ = Feedback.objects.update_or_create(
        message=message, defaults={"rating": rating}
    )
    metrics.feedback_recorded(rating)
    logger.info(
        "Feedback %s on message %s",
        rating,
        message.pk,
        extra={"conversation_id": str(message.conversation_id)},
    )
    return feedback


def fold_memory(
    conversation_id: Any, summary: str, until_seq: int, tokens: int
) -> bool:
    """Replace turns up to `until_seq` by `summary` in the conversation's memory.

    Returns False, changing nothing, when another fold got there first.
    """
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        if conversation.summary_until_seq >= until_seq:
            return False
        conversation.summary = summary
        conversation.summary_until_seq = until_seq
        conversation.memory_tokens = max(conversation.memory_tokens - tokens, 0)
        conversation.save(
            update_fields=["summary", "summary_until_seq", "memory_tokens"]
        )
    return True


def summarize_old_turns(conversation_id: Any) -> bool:
    """Fold the turns that no longer fit the memory budget into the summary.

    The model call happens outside any transaction; `fold_memory` then applies
    the result only if no other fold moved the summary on meanwhile.
    """
    conversation = Conversation.objects.get(pk=conversation_id)
    turns = [
        StoredTurn.from_row(row)
        for row in conversation.messages.filter(seq__gt=conversation.summary_until_seq)
        .order_by("seq")
        .values_list("seq", "role", "text", "token_count")
    ]
    to_fold, _ = split_for_folding(turns, get_bot_config().memory_token_budget)
    if not to_fold:
        return False

    async def summarize() -> str:
        turns = redact_turns(Turn(t.role, t.text) for t in to_fold)
        return await get_engine().summarize(redact(conversation.summary), turns)

    try:
        summary = run_sync(summarize)
    except EngineError as error:
        # The prompt still fits its budget without the summary: the oldest
        # turns are left out until a later fold succeeds.
        logger.warning(
            "Summary failed: %s",
            error.kind,
            extra={"conversation_id": str(conversation_id)},
        )
        return False
    folded_tokens = sum(t.tokens for t in to_fold)
    return fold_memory(conversation_id, summary, to_fold[-1].seq, folded_tokens)


# RFC 5321 (4.5.3.1.1) allows 64 octets before the @, which Django's email
# validator does not check; the address as a whole is held to the field's
# 254 characters.
EMAIL_LOCAL_PART_CHARS = 64


def save_contact_email(visitor: Visitor, email: str) -> None:
    """The customer left an address for a reply while nobody was online."""
    _check_email(email)
    with transaction.atomic():
        # The same address again (a second tab, a resend, other capitals)
        # changes nothing and is not announced twice.
        if (
            not Visitor.objects.filter(pk=visitor.pk)
            .exclude(email__iexact=email)
            .update(email=email)
        ):
            return
        conversation = (
            Conversation.objects.select_for_update(no_key=True)
            .filter(visitor=visitor)
            .order_by("-created_at")
            .first()
        )
        if conversation is not None:
            append_system_message(
                conversation, "Thanks, we'll also reply to the email address you left."
            )


def _check_email(email: str) -> None:
    """Refuses, as `invalid_email`, an address no mail server would take."""
    field = Visitor._meta.get_field("email")
    malformed = ActionError("invalid_email", "That email address doesn't look right.")
    if not email:  # the field's validators let an empty value through
        raise malformed
    try:
        field.run_validators(email)
    except ValidationError as error:
        if any(e.code == "max_length" for e in error.error_list):
            raise ActionError(
                "invalid_email",
                f"An email address can be at most {field.max_length} characters.",
            ) from None
        raise malformed from None
    if len(email.rpartition("@")[0]) > EMAIL_LOCAL_PART_CHARS:
        raise ActionError(
            "invalid_email",
            "The part before the @ can be at most "
            f"{EMAIL_LOCAL_PART_CHARS} characters.",
        )
