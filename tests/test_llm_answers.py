"""Answers through an OpenAI-compatible model, reached over HTTP by the real SDK."""

from typing import Any

import pytest

from conversations.models import Conversation, Message
from escalation.models import Escalation
from support_bot.bot.decision import WITHDRAWN
from tests.fake_llm import Reply
from tests.widget import ask, resume, settle, stored_frames


def article_id(kb: dict[str, Any], title: str) -> int:
    return int(kb[title].id)


async def test_model_answer_streams_and_cites_its_articles(
    connect: Any, kb: Any, llm: Any
) -> None:
    card = article_id(kb, "How long does a new card take to arrive?")
    chunks = ["Your card ", "arrives in 3 to 5 ", f"working days [A{card}]."]
    # Chunks that come apart in time are sent as they come.
    llm.script(Reply(chunks=chunks, chunk_delay=0.2))
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    deltas = [f for f in frames if f["type"] == "bot.delta"]
    assert [f["text"] for f in deltas] == chunks
    assert [f["index"] for f in deltas] == [0, 1, 2]
    answer = frames[-1]
    assert answer["text"] == "Your card arrives in 3 to 5 working days."
    assert [s["id"] for s in answer["sources"]] == [card]
    stored = await Message.objects.aget(seq=answer["seq"])
    assert stored.metadata["model"] == "fake-model"
    assert stored.metadata["prompt_tokens"] == 42


async def test_chunks_that_come_at_once_share_frames(
    connect: Any, kb: Any, llm: Any
) -> None:
    card = article_id(kb, "How long does a new card take to arrive?")
    chunks = ["Your ", "new ", "card ", "arrives ", "in 3 ", "to 5 "]
    chunks.append(f"working days [A{card}].")
    llm.script(Reply(chunks=chunks, burst=True))
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    deltas = [f for f in frames if f["type"] == "bot.delta"]
    assert "".join(f["text"] for f in deltas) == "".join(chunks)
    assert [f["index"] for f in deltas] == list(range(len(deltas)))
    assert len(deltas) < len(chunks)
    assert frames[-1]["text"] == "Your new card arrives in 3 to 5 working days."


async def test_prompt_carries_the_articles_and_the_earlier_turns(
    connect: Any, kb: Any, llm: Any
) -> None:
    lost = article_id(kb, "Reporting a lost or stolen card")
    card = article_id(kb, "How long does a new card take to arrive?")
    llm.script(
        Reply(chunks=[f"Freeze it and order a new one [A{lost}]."]),
        Reply(chunks=[f"3 to 5 working days [A{card}]."]),
    )
    widget = await connect()
    await resume(widget)
    await ask(widget, "I lost my card, how do I get a new one?")

    await ask(widget, "and how long does that take?")

    prompt = llm.requests[-1]["messages"]
    said = [m["content"] for m in prompt]
    assert prompt[-1] == {"role": "user", "content": "and how long does that take?"}
    assert "I lost my card, how do I get a new one?" in said
    assert "3 to 5 working days" in prompt[0]["content"], "the card article"


async def assert_apology_and_escalation(
    frames: list[dict[str, Any]], kind: str
) -> None:
    answer = frames[-1]
    assert answer["interrupted"] is True
    assert answer["text"].startswith("I'm sorry")
    conversation = await Conversation.objects.aget()
    assert conversation.status == "waiting"
    escalation = await Escalation.objects.aget()
    assert (escalation.reason, escalation.detail) == ("llm_error", kind)
    bot = [m async for m in Message.objects.filter(role="bot")]
    assert len(bot) == 1, "the reply is stored once"
    assert bot[0].metadata["error"] == kind


async def test_llm_timeout_gives_an_apology_and_hands_over(
    connect: Any, kb: Any, llm: Any, settings: Any
) -> None:
    settings.LLM_TIMEOUT = 1.0
    llm.script(Reply(delay=5))
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    await assert_apology_and_escalation(frames, "timeout")


async def test_llm_rate_limit_gives_an_apology_and_hands_over(
    connect: Any, kb: Any, llm: Any
) -> None:
    llm.script(*[Reply(status=429, retry_after=0.1)] * 4)
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    await assert_apology_and_escalation(frames, "rate_limited")


async def test_stream_cut_halfway_shows_no_duplicated_text(
    connect: Any, kb: Any, llm: Any
) -> None:
    llm.script(Reply(chunks=["Your card ", "arrives ", "in 3 to 5 days."], cut_after=2))
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    await assert_apology_and_escalation(frames, "stream_cut")
    stored = await Message.objects.aget(role="bot")
    assert stored.metadata["partial_text"] == "Your card arrives "
    assert "Your card" not in frames[-1]["text"]
    # The preview's stream is settled by the apology, which replaces it.
    streams = {f["stream"] for f in frames if f["type"] == "bot.delta"}
    assert streams == {frames[-1]["stream"]}


async def test_bot_stays_silent_while_waiting_for_a_person(
    connect: Any, kb: Any, llm: Any
) -> None:
    llm.script(Reply(status=500), Reply(status=500))
    widget = await connect()
    await resume(widget)
    await ask(widget, "When will my card arrive?")
    requests_before = len(llm.requests)

    await widget.send_json_to(
        {"type": "message", "client_id": "later", "text": "hello?"}
    )

    frames = stored_frames(await settle(widget))
    assert [f["type"] for f in frames][:2] == ["ack", "message"]
    assert not [f for f in frames if f["type"] == "bot.delta" or f.get("role") == "bot"]
    assert len(llm.requests) == requests_before


async def test_content_filter_is_not_shown_as_an_answer(
    connect: Any, kb: Any, llm: Any
) -> None:
    llm.script(Reply(chunks=["Something ", "awful"], finish_reason="content_filter"))
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "When will my card arrive?")

    await assert_apology_and_escalation(frames, "refused")


@pytest.mark.parametrize("text", ["[A{card}]", ". [A{card}]", "\u200b[A{card}]"])
async def test_an_answer_without_words_is_withdrawn(
    connect: Any, kb: Any, llm: Any, text: str
) -> None:
    card = article_id(kb, "How long does a new card take to arrive?")
    llm.script(Reply(chunks=[text.format(card=card)]))
    widget = await connect()
    await resume(widget)

    answer = (await ask(widget, "When will my card arrive?"))[-1]

    assert (answer["withdrawn"], answer["text"]) == (True, WITHDRAWN)
    stored = await Message.objects.aget(seq=answer["seq"])
    assert stored.metadata["reasons"] == ["the answer has no words"]
    escalation = await Escalation.objects.aget()
    assert escalation.reason == "no_answer"
