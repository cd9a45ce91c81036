"""An agent who closes the console is offline at once (after a short grace
for a reload), not after the heartbeat timeout; one whose console was cut off
is still online until the timeout, since the console comes back."""

import datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from conversations import consumers
from conversations.actions import ActionError
from escalation import actions
from escalation.models import AgentProfile, Escalation
from tests.agents import make_agent, open_console, receive_type, take_over
from tests.widget import receive_until, resume

PAGE_CLOSED = 1001
CONNECTION_LOST = 1006


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "LEAVE_GRACE_SECONDS", 0.0)


async def online() -> list[str]:
    agents = await sync_to_async(actions.online_agents)()
    return sorted(profile.user.username for profile, _ in agents)


async def opened(user: Any) -> Any:
    console = await open_console(user)
    connected, _ = await console.connect()
    assert connected
    await receive_type(console, "queue")
    return console


async def test_closing_the_only_console_takes_the_agent_offline(
    connect: Any, kb: Any, no_grace: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "QUEUE_REFRESH_SECONDS", 0.2)
    dana = await sync_to_async(make_agent)("dana", online=False)
    console = await opened(dana)
    assert await online() == ["dana"]

    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    told = await receive_until(widget, lambda f: f["type"] == "queue")
    assert told[-1]["agents_online"] is True

    await console.disconnect(code=PAGE_CLOSED)

    assert await online() == []
    later = await receive_until(widget, lambda f: f["type"] == "queue", seconds=5)
    assert later[-1]["agents_online"] is False


async def test_a_reload_within_the_grace_keeps_the_agent_online(
    transactional_db: None,
) -> None:
    dana = await sync_to_async(make_agent)("dana", online=False)
    console = await opened(dana)

    await console.disconnect(code=PAGE_CLOSED)
    assert await online() == ["dana"]  # the reloaded page is on its way
    again = await opened(dana)
    assert await online() == ["dana"]
    await again.disconnect(code=CONNECTION_LOST)


async def test_with_a_second_console_open_the_agent_stays_online(
    transactional_db: None, no_grace: None
) -> None:
    dana = await sync_to_async(make_agent)("dana", online=False)
    first = await opened(dana)
    second = await opened(dana)

    await first.disconnect(code=PAGE_CLOSED)
    assert await online() == ["dana"]
    await second.disconnect(code=PAGE_CLOSED)
    assert await online() == []


async def test_a_console_cut_off_counts_until_the_heartbeat_times_out(
    transactional_db: None, no_grace: None
) -> None:
    dana = await sync_to_async(make_agent)("dana", online=False)
    console = await opened(dana)

    await console.disconnect(code=CONNECTION_LOST)
    assert await online() == ["dana"]

    # The console never came back: the timeout passes.
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    await AgentProfile.objects.all().aupdate(
        last_seen_at=long_ago, present_until=long_ago
    )
    assert await online() == []


async def test_a_console_cut_off_and_back_leaves_nothing_counted_behind(
    transactional_db: None, no_grace: None
) -> None:
    """A console whose network dropped comes back as a new socket; when the
    agent then closes it, they are gone, not held by the dropped one."""
    dana = await sync_to_async(make_agent)("dana", online=False)
    console = await opened(dana)
    await console.disconnect(code=CONNECTION_LOST)
    again = await opened(dana)
    assert await online() == ["dana"]

    await again.disconnect(code=PAGE_CLOSED)

    assert await online() == []


async def test_consoles_a_crashed_server_never_closed_are_forgotten(
    transactional_db: None, no_grace: None
) -> None:
    """A count left high by sockets that went silent starts again at one
    when the agent comes back after the timeout."""
    dana = await sync_to_async(make_agent)("dana", online=False)
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    await AgentProfile.objects.all().aupdate(consoles_open=4, last_seen_at=long_ago)

    console = await opened(dana)
    await console.disconnect(code=PAGE_CLOSED)

    assert await online() == []


async def test_a_heartbeat_proves_a_console_is_open(
    transactional_db: None, no_grace: None
) -> None:
    """However the count went wrong, a console that sends its heartbeat
    keeps its agent online."""
    dana = await sync_to_async(make_agent)("dana", online=False)
    console = await opened(dana)
    await AgentProfile.objects.all().aupdate(consoles_open=0)
    assert await online() == []

    await console.send_json_to({"type": "heartbeat"})
    await receive_type(console, "heartbeat")

    assert await online() == ["dana"]
    await console.disconnect(code=CONNECTION_LOST)


def test_an_offer_to_an_agent_who_left_goes_to_someone_else_at_the_sweep(
    transactional_db: None, no_grace: None
) -> None:
    from tests.test_escalation_routing import escalate_new_conversation

    first = make_agent("first")
    escalation = escalate_new_conversation()
    assert escalation.assigned_to == first
    second = make_agent("second")

    actions.console_closed(first, left=True)  # the claim timeout is far off
    actions.sweep_escalations()

    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to) == ("assigned", second)
    assert Escalation.objects.count() == 1


def test_a_conversation_whose_agent_left_goes_back_to_the_queue(
    transactional_db: None, no_grace: None
) -> None:
    from tests.test_escalation_routing import escalate_new_conversation

    dana = make_agent("dana")
    escalation = escalate_new_conversation()
    conversation = actions.claim_conversation(dana, escalation.conversation_id)
    eve = make_agent("eve")

    actions.sweep_escalations()  # dana is still there
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent) == ("human", dana)

    actions.console_closed(dana, left=True)
    actions.sweep_escalations()

    conversation.refresh_from_db()
    escalation.refresh_from_db()
    assert (conversation.status, conversation.agent) == ("waiting", None)
    assert (escalation.status, escalation.assigned_to) == ("assigned", eve)
    assert Escalation.objects.count() == 1
    told = conversation.messages.order_by("-seq").first()
    assert told is not None
    assert told.text == actions.AGENT_LEFT_NOTICE.format(name="Dana")
    # Eve takes it as any other offer.
    first_claim = escalation.claimed_at
    actions.claim_conversation(eve, conversation.pk)
    conversation.refresh_from_db()
    escalation.refresh_from_db()
    assert (conversation.status, conversation.agent) == ("human", eve)
    # The wait estimates count the wait for the first claim only.
    assert (escalation.claimed_by, escalation.claimed_at) == (eve, first_claim)
    assert actions.sweep_escalations() == 0


async def test_the_customer_of_an_agent_who_left_is_told_and_not_stranded(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget, "dana")
    dana = await get_user_model().objects.aget(username="dana")
    # Her network went and never came back: silent past the heartbeat timeout.
    await console.disconnect(code=CONNECTION_LOST)
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    await AgentProfile.objects.filter(user=dana).aupdate(
        last_seen_at=long_ago, present_until=long_ago
    )

    await sync_to_async(actions.sweep_escalations)()

    frames = await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "waiting"
    )
    assert frames[-1]["reason"] == "agent_left"
    notices = [f["text"] for f in frames if f["type"] == "message"]
    assert notices == [actions.AGENT_LEFT_NOTICE.format(name="Dana")]
    # Dana, back later, finds it gone from her hands.
    with pytest.raises(ActionError) as refused:
        await sync_to_async(actions.post_agent_message)(dana, conversation, "c9", "Hi")
    assert refused.value.code == "not_owner"
    await widget.disconnect()
