"""A waiting customer's place in the queue follows the agents going away,
which no event announces: their presence times out."""

import datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from conversations import consumers
from escalation.models import AgentProfile
from tests.agents import make_agent
from tests.widget import receive_until, resume


async def test_the_queue_line_follows_agents_going_offline(
    connect: Any, kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "QUEUE_REFRESH_SECONDS", 0.2)
    await sync_to_async(make_agent)("dana")
    widget = await connect()
    await resume(widget)

    await widget.send_json_to({"type": "request_human"})
    first = await receive_until(widget, lambda f: f["type"] == "queue")
    assert first[-1]["agents_online"] is True

    # Dana's console went away: her presence runs out, with no event.
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    await AgentProfile.objects.all().aupdate(last_seen_at=long_ago)

    later = await receive_until(widget, lambda f: f["type"] == "queue", seconds=5)
    assert later[-1]["agents_online"] is False
