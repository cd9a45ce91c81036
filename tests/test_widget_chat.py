"""A customer chats with the offline bot through the widget socket."""

from typing import Any

from conversations import replies
from conversations.models import Message
from escalation.models import Escalation
from knowledge.models import BotSettings
from support_bot.bot.decision import UNSURE_OF_ARTICLE
from tests.widget import ask, new_client_id, receive_until, resume


async def test_answer_streams_then_settles_with_its_sources(
    connect: Any, kb: Any, settings: Any
) -> None:
    # Words written apart in time go out apart (at once, they share frames).
    settings.OFFLINE_STREAM_DELAY_MS = 5
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "My card hasn't arrived yet, when will it come?")

    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack"
    deltas = [f for f in frames if f["type"] == "bot.delta"]
    assert len(deltas) > 3, "the answer should stream word by word"
    answer = frames[-1]
    assert "".join(d["text"] for d in deltas) == answer["text"]
    assert {d["stream"] for d in deltas} == {answer["stream"]}
    assert answer["sources"] == [
        {
            "id": kb["How long does a new card take to arrive?"].id,
            "title": "How long does a new card take to arrive?",
        }
    ]
    assert "3 to 5 working days" in answer["text"]


async def test_customer_message_is_stored_before_the_answer(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    client_id = new_client_id()

    frames = await ask(widget, "How do I change my PIN?", client_id)

    ack = frames[0]
    assert ack == {
        "type": "ack",
        "client_id": client_id,
        "seq": 1,
        "conversation": ack["conversation"],
        "duplicate": False,
    }
    stored = [
        (m.seq, m.role, m.client_id)
        async for m in Message.objects.filter(conversation_id=ack["conversation"])
    ]
    assert stored == [(1, "customer", client_id), (2, "bot", None)]
    assert frames[-1]["reply_to"] == 1


async def test_bot_says_plainly_when_it_has_no_answer_and_hands_over(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "What's a good recipe for banana bread?")

    answer = frames[-1]
    assert answer["sources"] == []
    assert "don't have an answer" in answer["text"]
    escalation = await Escalation.objects.select_related("conversation").aget()
    assert escalation.reason == "no_answer"
    assert escalation.conversation.status == "waiting"


async def test_an_unsure_bot_does_not_claim_the_articles_have_nothing(
    connect: Any, kb: Any
) -> None:
    # Every answer is below this: the articles fit, but not surely enough.
    await BotSettings.objects.acreate(pk=1, confidence_threshold=0.999)
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    assert frames[-1]["text"] == UNSURE_OF_ARTICLE
    assert "help articles" not in frames[-1]["text"]
    escalation = await Escalation.objects.aget()
    assert escalation.reason == "low_confidence"


async def test_follow_up_question_is_understood_from_earlier_turns(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)

    await ask(widget, "I lost my card, how do I get a new one?")
    frames = await ask(widget, "and how long does that take?")

    titles = [s["title"] for s in frames[-1]["sources"]]
    assert titles == ["How long does a new card take to arrive?"]


async def test_a_second_tab_sees_the_conversation_live(
    connect: Any, kb: Any, monkeypatch: Any
) -> None:
    # The answer takes longer than the other tabs wait before it streams to
    # them too.
    monkeypatch.setattr(replies._LiveText, "LAYER_INTERVAL", 0.0)
    first = await connect()
    await resume(first)
    await ask(first, "How do I change my PIN?")
    second = await connect(token=first.welcome["token"])
    await resume(second)

    await first.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "My card was stolen"}
    )

    seen = await receive_until(
        second, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    texts = [f["text"] for f in seen if f["type"] == "message"]
    assert texts[0] == "My card was stolen"
    assert any(f["type"] == "bot.delta" for f in seen)
