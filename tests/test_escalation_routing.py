"""Escalations reach the right person once, and never get lost."""

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations import actions as conversation_actions
from conversations.actions import ActionError
from conversations.models import Conversation, Message
from escalation import actions
from escalation.models import Escalation, SupportSettings
from escalation.tasks import sweep_escalations_task
from support_bot.db import db_async
from tests.agents import make_agent


def escalate_new_conversation() -> Escalation:
    session = conversation_actions.open_visitor_session(None)
    conversation_actions.post_customer_message_once(session.visitor, "c1", "Help!")
    conversation_actions.request_human(session.visitor)
    return Escalation.objects.get()


def test_nobody_online_keeps_it_queued_and_says_so_once(transactional_db: None) -> None:
    escalation = escalate_new_conversation()

    assert actions.route_escalation(escalation.pk) == "no_agent"
    assert actions.route_escalation(escalation.pk) == "no_agent"

    escalation.refresh_from_db()
    assert escalation.status == "queued"
    notices = Message.objects.filter(text=actions.NOBODY_NOTICE)
    assert notices.count() == 1


def test_routing_offers_to_the_least_loaded_agent_once(transactional_db: None) -> None:
    busy = make_agent("busy")
    idle = make_agent("idle")
    make_agent("away", online=False)
    for _ in range(2):
        Conversation.objects.create(
            visitor=conversation_actions.open_visitor_session(None).visitor,
            status="human",
            agent=busy,
        )

    escalation = escalate_new_conversation()  # routed inline on commit

    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to) == ("assigned", idle)
    assert actions.route_escalation(escalation.pk) == "skipped"


def test_agent_at_capacity_gets_nothing_new(transactional_db: None) -> None:
    full = make_agent("full", capacity=1)
    Conversation.objects.create(
        visitor=conversation_actions.open_visitor_session(None).visitor,
        status="human",
        agent=full,
    )

    escalation = escalate_new_conversation()

    escalation.refresh_from_db()
    assert escalation.status == "queued"
    # The customer is told everyone is busy, not that nobody is there: the
    # queue frame says agents are online.
    notices = list(Message.objects.filter(role="system").values_list("text", flat=True))
    assert actions.BUSY_NOTICE in notices
    assert actions.NOBODY_NOTICE not in notices
    place = actions.queue_place(escalation.conversation_id)
    assert place is not None and place.agents_online


def test_an_offer_the_only_agent_let_lapse_tells_the_customer_nothing_new(
    transactional_db: None,
) -> None:
    dana = make_agent("dana")
    escalation = escalate_new_conversation()  # offered to Dana on commit

    assert actions.release_unclaimed(escalation.pk, dana.pk)

    escalation.refresh_from_db()
    assert escalation.status == "queued"
    notices = set(Message.objects.filter(role="system").values_list("text", flat=True))
    # Dana is still online: she is offered it again later, and the customer's
    # queue line keeps saying that someone is there.
    assert not notices & {actions.NOBODY_NOTICE, actions.BUSY_NOTICE}
    place = actions.queue_place(escalation.conversation_id)
    assert place is not None and place.agents_online


def test_unclaimed_offer_moves_to_another_agent(transactional_db: None) -> None:
    first = make_agent("first")
    escalation = escalate_new_conversation()
    escalation.refresh_from_db()
    assert escalation.assigned_to == first
    second = make_agent("second")

    assert actions.release_unclaimed(escalation.pk, first.pk)

    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to) == ("assigned", second)


def test_sweep_routes_what_a_lost_task_left_behind(
    transactional_db: None, settings: Any
) -> None:
    escalation = escalate_new_conversation()  # nobody online: stays queued
    agent = make_agent("late")
    Escalation.objects.filter(pk=escalation.pk).update(routed_at=None)
    Escalation.objects.filter(pk=escalation.pk).update(
        created_at=escalation.created_at.replace(year=2020)
    )

    assert sweep_escalations_task.delay().get() == 1

    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to) == ("assigned", agent)


def test_sweep_takes_back_offers_past_the_timeout(transactional_db: None) -> None:
    first = make_agent("first")
    escalation = escalate_new_conversation()
    settings_row = SupportSettings.load()
    settings_row.claim_timeout_seconds = 0
    settings_row.save()
    second = make_agent("second")

    sweep_escalations_task.delay()

    escalation.refresh_from_db()
    assert escalation.assigned_to == second
    assert escalation.assigned_to != first


async def test_two_agents_claiming_at_once_one_wins(transactional_db: None) -> None:
    escalation = await sync_to_async(escalate_new_conversation)()
    dana = await sync_to_async(make_agent)("dana")
    sam = await sync_to_async(make_agent)("sam")

    results = await asyncio.gather(
        db_async(actions.claim_conversation)(dana, escalation.conversation_id),
        db_async(actions.claim_conversation)(sam, escalation.conversation_id),
        return_exceptions=True,
    )

    won = [r for r in results if isinstance(r, Conversation)]
    lost = [r for r in results if isinstance(r, ActionError)]
    assert len(won) == 1
    assert [e.code for e in lost] == ["already_claimed"]
    joined = await Message.objects.filter(
        text__endswith="from support joined."
    ).acount()
    assert joined == 1


def test_only_the_owner_may_reply_resolve_or_hand_back(transactional_db: None) -> None:
    escalation = escalate_new_conversation()
    dana = make_agent("dana")
    sam = make_agent("sam")
    actions.claim_conversation(dana, escalation.conversation_id)

    for act in (
        lambda: actions.post_agent_message(sam, escalation.conversation_id, "x", "hi"),
        lambda: actions.resolve_conversation(sam, escalation.conversation_id),
        lambda: actions.hand_back_to_bot(sam, escalation.conversation_id),
    ):
        with pytest.raises(ActionError) as refused:
            act()
        assert refused.value.code == "not_owner"


def test_an_answer_that_hands_over_after_the_customer_asked_opens_nothing_more(
    transactional_db: None,
) -> None:
    # The bot was still writing its answer when the customer asked for a
    # person (nobody online): the answer's own hand-over finds it waiting.
    escalation = escalate_new_conversation()
    conversation = escalation.conversation

    conversation_actions.store_bot_reply(
        conversation.id, "I'm not sure.", {}, escalate_reason="no_answer"
    )

    assert Escalation.objects.count() == 1
    conversation.refresh_from_db()
    assert conversation.status == "waiting"
    assert Message.objects.filter(text=actions.NOBODY_NOTICE).count() == 1


def test_an_answer_that_hands_over_after_an_agent_took_over_changes_nothing(
    transactional_db: None,
) -> None:
    dana = make_agent("dana")
    escalation = escalate_new_conversation()  # offered to Dana on commit
    actions.claim_conversation(dana, escalation.conversation_id)

    conversation_actions.store_bot_reply(
        escalation.conversation_id, "I'm not sure.", {}, escalate_reason="no_answer"
    )

    conversation = Conversation.objects.get(pk=escalation.conversation_id)
    assert (conversation.status, conversation.agent) == ("human", dana)
    assert list(Escalation.objects.values_list("status", flat=True)) == ["claimed"]


def test_a_transfer_goes_only_to_another_agent_who_is_online(
    transactional_db: None,
) -> None:
    dana = make_agent("dana")
    sam = make_agent("sam")
    away = make_agent("away", online=False)
    escalation = escalate_new_conversation()
    conversation_id = escalation.conversation_id
    actions.claim_conversation(dana, conversation_id)

    for target, code in [(away, "not_available"), (dana, "already_yours")]:
        with pytest.raises(ActionError) as refused:
            actions.transfer_conversation(dana, conversation_id, target.pk)
        assert refused.value.code == code
    conversation = Conversation.objects.get()
    assert conversation.agent == dana
    assert not Message.objects.filter(text__contains="Away").exists()

    actions.transfer_conversation(dana, conversation_id, sam.pk)

    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent) == ("human", sam)
    assert Message.objects.filter(text="Sam from support joined.").exists()
