"""Handing conversations from the bot to people, and what people do with them.

One owner at a time: the bot, the queue, or one agent. Every change of owner
happens here, with the conversation row locked, so two agents cannot both
claim a conversation and the bot never answers while a person owns it.
Routing runs in Celery (tasks.py) and is idempotent: it acts only on an
escalation still in the state it expects.
"""

import datetime
import logging
import statistics
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from conversations.actions import (
    HANDED_BACK,
    ActionError,
    append_message,
    append_system_message,
    lock_conversation,
    set_status,
)
from conversations.models import Conversation, Message
from support_bot import live, metrics
from support_bot.bot.config import get_bot_config
from support_bot.celery import enqueue
from support_bot.privacy import redact

from .models import (
    AGENTS_GROUP,
    AgentProfile,
    BusinessHours,
    Escalation,
    HeldAnswer,
    InternalNote,
    SupportSettings,
)

logger = logging.getLogger(__name__)

AGENTS_LIVE_GROUP = "agents"

WAITING_NOTICE = (
    "I've asked a person from our support team to take over. "
    "They'll reply right here; you can keep writing in the meantime."
)
# The widget offers its email form beside this notice (the queue frame says
# nobody is online), so the notice itself does not ask for an address.
NOBODY_NOTICE = (
    "Nobody from our support team is available right now. Your conversation "
    "stays in our queue and a person will reply here."
)
# When the agent who had the conversation is no longer online.
# Routing says next whether someone else is coming or nobody is online.
AGENT_LEFT_NOTICE = (
    "{name} from support had to leave, so your conversation is back in our "
    "queue for the next person free."
)
# When agents are online but each has as many conversations as they take.
BUSY_NOTICE = (
    "Everyone on our support team is helping other customers right now. "
    "You're in the queue, and the next person free will reply here."
)


def is_agent(user: Any) -> bool:
    """Signed in, active, and in the agents group (or a superuser)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name=AGENTS_GROUP).exists())


def agent_name(user: Any) -> str:
    return str(user.first_name or user.get_username())


def _queue_changed() -> None:
    live.send_after_commit(AGENTS_LIVE_GROUP, {"type": "agents.queue"})


def escalate_locked(
    conversation: Conversation,
    reason: str,
    *,
    detail: str = "",
    confidence: Any = None,
    announce: bool = True,
) -> Escalation | None:
    """Hand `conversation` to people. Precondition: its row is locked.

    `announce` adds a notice for the customer; callers whose own message
    already says a person is coming pass False. A conversation already
    waiting for or with a person is left as it is, and None returned: an
    answer the bot was writing when the customer asked for a person, or when
    an agent took over, can end in a hand-over of its own.
    """
    if conversation.status in (
        Conversation.Status.WAITING,
        Conversation.Status.HUMAN,
    ):
        logger.info(
            "Not escalated (%s): already with people",
            reason,
            extra={"conversation_id": str(conversation.id), "reason": reason},
        )
        return None
    escalation = Escalation.objects.create(
        conversation=conversation,
        reason=reason,
        detail=detail[:255],
        confidence=confidence if isinstance(confidence, int | float) else None,
        summary=_summary(conversation),
    )
    set_status(conversation, Conversation.Status.WAITING, reason=reason)
    if announce:
        append_system_message(conversation, WAITING_NOTICE)
    _queue_changed()

    from .tasks import route_escalation_task

    escalation_id = escalation.pk
    transaction.on_commit(lambda: metrics.escalated(reason))
    transaction.on_commit(lambda: enqueue(route_escalation_task, escalation_id))
    logger.info(
        "Conversation escalated: %s",
        reason,
        extra={"conversation_id": str(conversation.id), "reason": reason},
    )
    return escalation


def _summary(conversation: Conversation) -> str:
    """For the agent's queue: the running summary's lines, then on a line of
    their own the latest asks the summary has not folded in yet."""
    asked = list(
        conversation.messages.filter(
            role=Message.Role.CUSTOMER, seq__gt=conversation.summary_until_seq
        )
        .order_by("-seq")
        .values_list("text", flat=True)[:3]
    )
    # A preview outside the conversation view: redacted before clipping, so
    # a card number cut in half is still recognised.
    summary = redact(conversation.summary.strip())
    parts = [line for line in summary.splitlines() if line.strip()]
    if asked:
        latest = " / ".join(reversed([_clip(redact(text), 160) for text in asked]))
        parts.append(f"Latest from the customer: {latest}")
    return "\n".join(parts) or "No messages yet."


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Routing ------------------------------------------------------------------


# How long an agent who closed their last console still counts as online: a
# reload of the console closes its socket before the new page opens one.
LEAVE_GRACE_SECONDS = 10.0


def _present() -> Q:
    """Agents with a console open that sent its heartbeat in time, or whose
    last console closed so recently that it may be coming back."""
    now = timezone.now()
    heard = now - datetime.timedelta(seconds=settings.AGENT_PRESENCE_TIMEOUT)
    return Q(consoles_open__gt=0, last_seen_at__gte=heard) | Q(present_until__gte=now)


def online_agents() -> list[tuple[AgentProfile, int]]:
    """Agents with a live console, each with their current load."""
    profiles = (
        AgentProfile.objects.filter(_present(), user__is_active=True)
        .select_related("user")
        .annotate(
            owned=Count(
                "user__conversations",
                filter=Q(user__conversations__status=Conversation.Status.HUMAN),
                distinct=True,
            )
        )
    )
    offered = dict(
        Escalation.objects.filter(status=Escalation.Status.ASSIGNED)
        .values_list("assigned_to")
        .annotate(n=Count("id"))
        .values_list("assigned_to", "n")
    )
    return [(p, p.owned + offered.get(p.user_id, 0)) for p in profiles]


def route_escalation(escalation_id: int, *, exclude_user_id: int | None = None) -> str:
    """Offer a queued escalation to the least-loaded online agent with room.

    Returns what happened: "assigned", "no_agent", or "skipped" when the
    escalation is no longer queued (routing twice assigns once).
    """
    with transaction.atomic():
        escalation = _lock_escalation(escalation_id)
        if escalation.status != Escalation.Status.QUEUED:
            return "skipped"
        escalation.routed_at = timezone.now()
        escalation.routing_attempts += 1

        online = online_agents() if BusinessHours.is_open() else []
        others = [(p, load) for p, load in online if p.user_id != exclude_user_id]
        candidates = [(load, p) for p, load in others if load < p.capacity]
        if not candidates:
            # Nobody online, or everyone online at capacity. When the only
            # agent online is the one who let the offer lapse, it is offered
            # to them again later and the customer is told nothing new.
            if others or not online:
                _tell_customer_to_wait(escalation, busy=bool(others))
            escalation.save()
            return "no_agent"

        load, profile = min(candidates, key=lambda c: (c[0], c[1].user_id))
        escalation.status = Escalation.Status.ASSIGNED
        escalation.assigned_to = profile.user
        escalation.assigned_at = timezone.now()
        escalation.save()
        live.send_after_commit(
            agent_group(profile.user_id),
            {
                "type": "agents.assigned",
                "conversation": str(escalation.conversation_id),
            },
        )
        # The customer may have been told nobody is online; someone is now.
        live.send_after_commit(
            live.conversation_group(escalation.conversation_id),
            {"type": "conversation.queue"},
        )
        _queue_changed()
    # An offer nobody claims is taken back by the sweep (sweep_escalations).
    logger.info(
        "Escalation offered to agent %s (load %s)",
        profile.user_id,
        load,
        extra={"conversation_id": str(escalation.conversation_id)},
    )
    return "assigned"


def _lock_escalation(escalation_id: int) -> Escalation:
    """Lock an escalation and, first, its conversation.

    Everything that locks both takes the conversation first (claims, replies,
    resolving), so two of them can never wait on each other.
    """
    conversation_id = Escalation.objects.values_list("conversation_id", flat=True).get(
        pk=escalation_id
    )
    lock_conversation(conversation_id)
    return (
        Escalation.objects.select_for_update(no_key=True)
        .select_related("conversation")
        .get(pk=escalation_id)
    )


def _tell_customer_to_wait(escalation: Escalation, *, busy: bool) -> None:
    """Say once why nobody has taken the conversation yet: nobody is online,
    or everyone online is at capacity (as the queue frame's agents_online
    says). Precondition: the escalation was locked with `_lock_escalation`."""
    if escalation.told_no_agent:
        return
    append_system_message(
        escalation.conversation, BUSY_NOTICE if busy else NOBODY_NOTICE
    )
    escalation.told_no_agent = True


def release_unclaimed(escalation_id: int, user_id: int) -> bool:
    """Take an offer back from an agent who did not claim it in time."""
    with transaction.atomic():
        escalation = _lock_escalation(escalation_id)
        if (
            escalation.status != Escalation.Status.ASSIGNED
            or escalation.assigned_to_id != user_id
        ):
            return False
        escalation.status = Escalation.Status.QUEUED
        escalation.assigned_to = None
        escalation.save()
        _queue_changed()
    logger.info(
        "Unclaimed escalation taken back from agent %s",
        user_id,
        extra={"conversation_id": str(escalation.conversation_id)},
    )
    route_escalation(escalation_id, exclude_user_id=user_id)
    return True


def stale_escalations(retry_after: float = 20) -> list[tuple[int, int | None]]:
    """Escalations routing has left behind: (id, agent to take it back from).

    Queued ones not routed for a while (a worker died mid-task, or nobody was
    online), and offered ones past the claim timeout.
    """
    now = timezone.now()
    timeout = SupportSettings.load().claim_timeout_seconds
    queued = Escalation.objects.filter(
        Q(routed_at__isnull=True)
        | Q(routed_at__lt=now - datetime.timedelta(seconds=retry_after)),
        status=Escalation.Status.QUEUED,
    ).values_list("id", flat=True)
    present = AgentProfile.objects.filter(_present()).values("user_id")
    offered = Escalation.objects.filter(
        Q(assigned_at__lt=now - datetime.timedelta(seconds=timeout))
        | ~Q(assigned_to__in=present),
        status=Escalation.Status.ASSIGNED,
    ).values_list("id", "assigned_to_id")
    return [(pk, None) for pk in queued] + list(offered)


def abandoned_conversations() -> list[tuple[Any, int]]:
    """Conversations whose agent is no longer online: (id, agent)."""
    present = AgentProfile.objects.filter(_present()).values("user_id")
    return list(
        Conversation.objects.filter(status=Conversation.Status.HUMAN)
        .exclude(agent__in=present)
        .values_list("id", "agent_id")
    )


def return_abandoned(conversation_id: Any, user_id: int) -> bool:
    """Put a conversation whose agent left back in the queue, and route it.

    Nothing else could take it from them: only its owner may reply, resolve
    or hand it back, and claiming it is refused while someone has it.
    """
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        if (
            conversation.status != Conversation.Status.HUMAN
            or conversation.agent_id != user_id
            # Back in the meantime (the sweep's list was read unlocked).
            or AgentProfile.objects.filter(_present(), user_id=user_id).exists()
        ):
            return False
        left = agent_name(conversation.agent) if conversation.agent else "Our agent"
        escalation = _open_escalation(conversation)
        if escalation is None:
            # Every claim is of a waiting conversation, which has one.
            logger.error(
                "A claimed conversation has no escalation to put back",
                extra={"conversation_id": str(conversation_id)},
            )
            return False
        escalation.status = Escalation.Status.QUEUED
        escalation.assigned_to = None
        escalation.routed_at = None
        escalation.told_no_agent = False
        escalation.save()
        conversation.status = Conversation.Status.WAITING
        conversation.agent = None
        conversation.save(update_fields=["status", "agent", "updated_at"])
        append_system_message(conversation, AGENT_LEFT_NOTICE.format(name=left))
        _announce_owner(conversation, "agent_left")
    logger.info(
        "Conversation of agent %s, who left, put back in the queue",
        user_id,
        extra={"conversation_id": str(conversation_id)},
    )
    route_escalation(escalation.pk, exclude_user_id=user_id)
    return True


def record_heartbeat(user: Any) -> None:
    """A console of `user` is open and answering: so at least one is."""
    now = timezone.now()
    AgentProfile.objects.update_or_create(
        user=user,
        defaults={"last_seen_at": now, "consoles_open": Greatest("consoles_open", 1)},
        create_defaults={"last_seen_at": now, "consoles_open": 1},
    )


def console_opened(user: Any) -> None:
    """Count a console the agent opened. A count left from consoles that
    went silent without closing (a crashed server) starts again at one."""
    with transaction.atomic():
        profile, _ = AgentProfile.objects.select_for_update().get_or_create(user=user)
        now = timezone.now()
        since = now - datetime.timedelta(seconds=settings.AGENT_PRESENCE_TIMEOUT)
        still_there = profile.last_seen_at is not None and profile.last_seen_at >= since
        profile.consoles_open = profile.consoles_open + 1 if still_there else 1
        profile.last_seen_at = now
        profile.save(update_fields=["consoles_open", "last_seen_at"])


def console_closed(user: Any, *, left: bool) -> None:
    """A console of the agent closed: `left` when they closed or left the
    page. With none left open they are offline once LEAVE_GRACE_SECONDS
    have passed after leaving, or AGENT_PRESENCE_TIMEOUT after a console was
    cut off; what was offered to them and not claimed then goes to someone
    else (or back to the queue) at the next sweep, and what they had
    claimed back to the queue."""
    with transaction.atomic():
        profile = AgentProfile.objects.select_for_update().filter(user=user).first()
        if profile is None or profile.consoles_open == 0:
            return
        now = timezone.now()
        grace = LEAVE_GRACE_SECONDS if left else settings.AGENT_PRESENCE_TIMEOUT
        profile.consoles_open -= 1
        profile.last_seen_at = now
        profile.present_until = now + datetime.timedelta(seconds=grace)
        profile.save(update_fields=["consoles_open", "last_seen_at", "present_until"])


def agent_checked_in(user: Any, *, connected: bool = False) -> None:
    """A console connected or sent its heartbeat.

    An agent coming online is the moment waiting conversations can be routed,
    so a sweep follows. With tasks inline (one process, no beat) the
    heartbeats are also what drives the sweep at all.
    """
    if connected:
        console_opened(user)
    else:
        record_heartbeat(user)
    from support_bot.celery import app

    # On connecting, everything queued is routed now, however recently tried.
    retry_after = 0.0 if connected else 20.0
    if app.conf.task_always_eager:
        sweep_escalations(retry_after)
    elif connected:
        from .tasks import sweep_escalations_task

        transaction.on_commit(lambda: enqueue(sweep_escalations_task, retry_after))


def sweep_escalations(retry_after: float = 20.0) -> int:
    """Route what routing left behind; take back offers past the timeout,
    and conversations from agents who left."""
    abandoned = abandoned_conversations()
    for conversation_id, agent_id in abandoned:
        return_abandoned(conversation_id, agent_id)
    stale = stale_escalations(retry_after)
    for escalation_id, offered_to in stale:
        if offered_to is None:
            route_escalation(escalation_id)
        else:
            release_unclaimed(escalation_id, offered_to)
    return len(abandoned) + len(stale)


def agent_group(user_id: Any) -> str:
    return f"agent.{user_id}"


# --- What agents do -----------------------------------------------------------


def _open_escalation(conversation: Conversation) -> Escalation | None:
    return (
        conversation.escalations.select_for_update(no_key=True)
        .filter(status__in=[*Escalation.OPEN_STATUSES, Escalation.Status.CLAIMED])
        .order_by("-created_at")
        .first()
    )


def _require_owner(conversation: Conversation, user: Any) -> None:
    if (
        conversation.status != Conversation.Status.HUMAN
        or conversation.agent_id != user.pk
    ):
        raise ActionError("not_owner", "Claim this conversation before you act on it.")


def require_owner(user: Any, conversation_id: Any) -> None:
    """Refuse what only the conversation's agent may do (show typing, say)."""
    try:
        conversation = Conversation.objects.only("status", "agent_id").get(
            pk=conversation_id
        )
    except Conversation.DoesNotExist:
        raise ActionError("not_found", "There is no such conversation.") from None
    _require_owner(conversation, user)


def _announce_owner(conversation: Conversation, reason: str) -> None:
    agent = conversation.agent
    live.send_after_commit(
        live.conversation_group(conversation.id),
        {
            "type": "conversation.status",
            "frame": {
                "type": "status",
                "conversation": str(conversation.id),
                "status": conversation.status,
                "reason": reason,
                "agent": {"name": agent_name(agent)} if agent else None,
            },
        },
    )
    _queue_changed()


def claim_conversation(user: Any, conversation_id: Any) -> Conversation:
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        if conversation.status == Conversation.Status.HUMAN:
            if conversation.agent_id == user.pk:
                return conversation
            owner = agent_name(conversation.agent) if conversation.agent else "someone"
            raise ActionError("already_claimed", f"{owner} already took this one.")
        if conversation.status != Conversation.Status.WAITING:
            raise ActionError(
                "not_waiting", "This conversation is not waiting for a person."
            )

        conversation.status = Conversation.Status.HUMAN
        conversation.agent = user
        conversation.save(update_fields=["status", "agent", "updated_at"])
        escalation = _open_escalation(conversation)
        if escalation is not None:
            escalation.status = Escalation.Status.CLAIMED
            escalation.claimed_by = user
            # Claimed again after its agent left: the wait estimate counts
            # the wait for the first claim, not the first agent's time.
            escalation.claimed_at = escalation.claimed_at or timezone.now()
            escalation.save()
        append_system_message(conversation, f"{agent_name(user)} from support joined.")
        _announce_owner(conversation, "claimed")
    logger.info(
        "Agent %s claimed a conversation",
        user.pk,
        extra={"conversation_id": str(conversation.id)},
    )
    return conversation


def post_agent_message(
    user: Any, conversation_id: Any, client_id: str, text: str
) -> Message:
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        _require_owner(conversation, user)
        existing = conversation.messages.filter(client_id=client_id).first()
        if existing is not None:
            return existing
        _time_first_agent_reply(conversation)
        return append_message(
            conversation,
            Message.Role.AGENT,
            text,
            client_id=client_id,
            metadata={"author": {"name": agent_name(user)}, "agent_id": user.pk},
        )


def _time_first_agent_reply(conversation: Conversation) -> None:
    """Record how long the customer waited for a person's first word."""
    escalation = _open_escalation(conversation)
    if (
        escalation is None
        or conversation.messages.filter(
            role=Message.Role.AGENT, created_at__gte=escalation.created_at
        ).exists()
    ):
        return
    waited = (timezone.now() - escalation.created_at).total_seconds()
    transaction.on_commit(lambda: metrics.first_response("agent", waited))


def add_note(user: Any, conversation_id: Any, text: str) -> InternalNote:
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        note = InternalNote.objects.create(
            conversation=conversation, author=user, text=text
        )
        live.send_after_commit(
            conversation_agents_group(conversation.id),
            {"type": "agents.note", "frame": note_frame(note)},
        )
    return note


def note_frame(note: InternalNote) -> dict[str, Any]:
    return {
        "type": "note",
        "conversation": str(note.conversation_id),
        "author": agent_name(note.author) if note.author else "",
        "text": note.text,
        "created_at": note.created_at.isoformat(),
    }


conversation_agents_group = live.conversation_agents_group


def _finish_locked(
    conversation: Conversation, status: str, escalation_status: str
) -> None:
    """Give the conversation up. Precondition: its row is locked by the owner."""
    conversation.status = status
    conversation.agent = None
    conversation.save(update_fields=["status", "agent", "updated_at"])
    escalation = _open_escalation(conversation)
    if escalation is not None:
        escalation.status = escalation_status
        escalation.closed_at = timezone.now()
        escalation.save()
    # The reason is what happened ("resolved", "handed_back"), as for the
    # other changes of owner, not the status it led to.
    _announce_owner(conversation, escalation_status)


def _finish(
    user: Any,
    conversation_id: Any,
    status: str,
    escalation_status: str,
    notice: str,
    metadata: dict[str, Any] | None = None,
) -> Conversation:
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        _require_owner(conversation, user)
        append_system_message(conversation, notice, metadata)
        _finish_locked(conversation, status, escalation_status)
    return conversation


def resolve_conversation(user: Any, conversation_id: Any) -> Conversation:
    return _finish(
        user,
        conversation_id,
        Conversation.Status.CLOSED,
        Escalation.Status.RESOLVED,
        f"{agent_name(user)} marked this conversation as resolved. Write again any "
        "time and our assistant will pick it up.",
    )


def hand_back_to_bot(user: Any, conversation_id: Any) -> Conversation:
    return _finish(
        user,
        conversation_id,
        Conversation.Status.BOT,
        Escalation.Status.HANDED_BACK,
        "Our assistant is back with you.",
        {HANDED_BACK: True},
    )


def transfer_conversation(
    user: Any, conversation_id: Any, to_user_id: int
) -> Conversation:
    from django.contrib.auth import get_user_model

    target = get_user_model().objects.filter(pk=to_user_id, is_active=True).first()
    if target is None or not is_agent(target):
        raise ActionError("not_found", "There is no such agent.")
    # Presence as routing sees it: a console heard from recently. A
    # conversation handed to someone who is not there would wait unseen,
    # since nothing takes back a conversation a person owns.
    if not any(profile.user_id == target.pk for profile, _ in online_agents()):
        raise ActionError(
            "not_available", f"{agent_name(target)} is not online right now."
        )
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        _require_owner(conversation, user)
        if target.pk == user.pk:
            raise ActionError("already_yours", "This conversation is already yours.")
        conversation.agent = target
        conversation.save(update_fields=["agent", "updated_at"])
        append_system_message(
            conversation, f"{agent_name(target)} from support joined."
        )
        _announce_owner(conversation, "transferred")
        live.send_after_commit(
            agent_group(target.pk),
            {"type": "agents.assigned", "conversation": str(conversation.id)},
        )
    return conversation


# --- What the customer is told ------------------------------------------------


@dataclass(frozen=True)
class QueuePlace:
    position: int
    wait_minutes: int | None
    agents_online: bool


def queue_place(conversation_id: Any) -> QueuePlace | None:
    """Where a waiting conversation stands, and an estimate from recent claims.

    The estimate is the median time recent escalations waited to be claimed,
    times the position; with fewer than three recent claims there is no
    honest estimate and None is returned for it.
    """
    waiting = [
        str(pk)
        for pk in Escalation.objects.filter(status__in=Escalation.OPEN_STATUSES)
        .order_by("created_at")
        .values_list("conversation_id", flat=True)
    ]
    if str(conversation_id) not in waiting:
        return None
    position = waiting.index(str(conversation_id))
    recent = [
        (created, claimed)
        for created, claimed in Escalation.objects.filter(claimed_at__isnull=False)
        .order_by("-claimed_at")
        .values_list("created_at", "claimed_at")[:20]
        if claimed is not None
    ]
    online = BusinessHours.is_open() and bool(online_agents())
    if len(recent) < 3 or not online:
        return QueuePlace(position + 1, None, online)
    median = statistics.median((c - s).total_seconds() for s, c in recent)
    minutes = max(1, round(median * (position + 1) / 60))
    return QueuePlace(position + 1, minutes, online)


# --- What the console shows ---------------------------------------------------


def queue_items() -> list[dict[str, Any]]:
    """Every conversation waiting for or with a person, oldest first."""
    conversations = (
        Conversation.objects.filter(
            status__in=[Conversation.Status.WAITING, Conversation.Status.HUMAN]
        )
        .select_related("agent")
        .order_by("updated_at")[:200]
    )
    latest: dict[Any, Escalation] = {}
    for row in (
        Escalation.objects.filter(conversation__in=conversations)
        .select_related("assigned_to")
        .order_by("created_at")
    ):
        latest[row.conversation_id] = row
    items = []
    for conversation in conversations:
        escalation = latest.get(conversation.id)
        items.append(
            {
                "conversation": str(conversation.id),
                "status": conversation.status,
                "agent": _person(conversation.agent),
                "reason": escalation.reason if escalation else None,
                "confidence": escalation.confidence if escalation else None,
                "summary": escalation.summary if escalation else "",
                "waiting_since": (
                    escalation.created_at if escalation else conversation.updated_at
                ).isoformat(),
                "assigned_to": _person(escalation.assigned_to) if escalation else None,
            }
        )
    return items


def _person(user: Any) -> dict[str, Any] | None:
    return {"id": user.pk, "name": agent_name(user)} if user else None


def agents_available() -> list[dict[str, Any]]:
    return [
        {"id": p.user_id, "name": p.name, "load": load, "capacity": p.capacity}
        for p, load in online_agents()
    ]


def transcript(conversation_id: Any) -> dict[str, Any]:
    try:
        conversation = Conversation.objects.select_related("agent").get(
            pk=conversation_id
        )
    except (Conversation.DoesNotExist, ValueError):
        raise ActionError("not_found", "There is no such conversation.") from None
    return {
        "type": "transcript",
        "conversation": str(conversation.id),
        "status": conversation.status,
        "agent": _person(conversation.agent),
        "notes": [note_frame(n) for n in conversation.notes.select_related("author")],
        "drafts": [
            held.as_frame()
            for held in conversation.held_answers.filter(
                status=HeldAnswer.Status.PENDING
            )
        ],
        "escalations": [
            {
                "reason": e.reason,
                "detail": e.detail,
                "confidence": e.confidence,
                "created_at": e.created_at.isoformat(),
            }
            for e in conversation.escalations.order_by("created_at")
        ],
    }


# --- Answers held for approval ------------------------------------------------


def hold_answer(
    conversation_id: Any,
    reply_to: int,
    draft: str,
    metadata: dict[str, Any],
    notice: str,
) -> Message:
    """Keep the bot's draft for a person and tell the customer it is being checked.

    The notice carries the draft's stream id, so the widget replaces any
    preview it streamed with the notice.
    """
    with transaction.atomic():
        conversation = lock_conversation(conversation_id)
        held = HeldAnswer.objects.create(
            conversation=conversation, reply_to=reply_to, text=draft, metadata=metadata
        )
        message = append_message(
            conversation,
            Message.Role.SYSTEM,
            notice,
            metadata={"stream": metadata.get("stream"), "reply_to": reply_to},
        )
        if conversation.status == Conversation.Status.BOT:
            escalate_locked(
                conversation,
                Escalation.Reason.REVIEW,
                confidence=metadata.get("confidence"),
                announce=False,
            )
        live.send_after_commit(
            conversation_agents_group(conversation.id),
            {"type": "agents.draft", "frame": held.as_frame()},
        )
    return message


def _lock_pending_draft(user: Any, held_id: int) -> tuple[Conversation, HeldAnswer]:
    """Lock a pending draft and its conversation (first), for its owner.

    Approving or discarding a draft of a waiting conversation claims it, but
    only once the draft is known to be pending: a stale button claims
    nothing.
    """
    conversation_id = (
        HeldAnswer.objects.filter(pk=held_id)
        .values_list("conversation_id", flat=True)
        .first()
    )
    if conversation_id is None:
        raise ActionError("not_found", "There is no such draft.")
    conversation = lock_conversation(conversation_id)
    held = HeldAnswer.objects.select_for_update(no_key=True).get(pk=held_id)
    if held.status != HeldAnswer.Status.PENDING:
        raise ActionError("not_pending", "This draft was already handled.")
    if conversation.status == Conversation.Status.WAITING:
        conversation = claim_conversation(user, conversation_id)
    _require_owner(conversation, user)
    return conversation, held


def send_held_answer(user: Any, held_id: int, text: str | None = None) -> Message:
    """Send a held answer, as it is or edited, and give the bot its turn back.

    An agent who has not claimed the conversation claims it by approving; a
    draft already handled claims nothing.
    """
    with transaction.atomic():
        conversation, held = _lock_pending_draft(user, held_id)
        edited = text is not None and text.strip() != held.text.strip()
        held.status = HeldAnswer.Status.SENT
        held.edited = edited
        held.decided_by = user
        held.decided_at = timezone.now()
        held.save()
        metadata = {
            **held.metadata,
            "stream": None,
            "author": {"name": get_bot_config().name},
            "approved_by": user.pk,
            "edited": edited,
        }
        message = append_message(
            conversation,
            Message.Role.BOT,
            text.strip() if edited and text else held.text,
            metadata=metadata,
        )
        _finish_locked(
            conversation, Conversation.Status.BOT, Escalation.Status.HANDED_BACK
        )
    return message


def discard_held_answer(user: Any, held_id: int) -> None:
    """Drop a draft; the conversation stays with the agent to answer in person."""
    with transaction.atomic():
        _, held = _lock_pending_draft(user, held_id)
        held.status = HeldAnswer.Status.DISCARDED
        held.decided_by = user
        held.decided_at = timezone.now()
        held.save(update_fields=["status", "decided_by", "decided_at"])
