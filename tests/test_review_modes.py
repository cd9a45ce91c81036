"""Supervised and copilot modes: a person approves answers before customers see them."""

import asyncio
from typing import Any

from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message
from escalation.models import HeldAnswer
from knowledge.models import BotSettings
from support_bot.bot.decision import HELD
from tests.agents import make_agent, open_console
from tests.fake_llm import Reply
from tests.widget import ask, receive_until, resume

CARD_TITLE = "How long does a new card take to arrive?"


async def review_mode(mode: str) -> None:
    await BotSettings.objects.acreate(pk=1, review_mode=mode)


async def test_copilot_holds_every_answer_until_an_agent_sends_it(
    connect: Any, kb: Any, llm: Any
) -> None:
    await review_mode("copilot")
    card = kb[CARD_TITLE].id
    llm.script(Reply(chunks=["Within 3 to 5 ", f"working days [A{card}]."]))
    widget = await connect()
    await resume(widget)

    frames = await receive_held(widget, "When will my card arrive?")

    assert not [f for f in frames if f["type"] == "bot.delta"], "nothing streamed"
    held = await HeldAnswer.objects.aget()
    assert held.text == "Within 3 to 5 working days."
    assert (await Conversation.objects.aget()).status == "waiting"

    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()
    await console.send_json_to({"type": "approve", "draft": held.pk})

    sent = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    assert sent[-1]["text"] == "Within 3 to 5 working days."
    assert [s["id"] for s in sent[-1]["sources"]] == [card]
    assert (await Conversation.objects.aget()).status == "bot"


async def test_an_edited_draft_goes_out_as_edited(
    connect: Any, kb: Any, llm: Any
) -> None:
    await review_mode("copilot")
    card = kb[CARD_TITLE].id
    llm.script(Reply(chunks=[f"Soon [A{card}]."]))
    widget = await connect()
    await resume(widget)
    await receive_held(widget, "When will my card arrive?")
    held = await HeldAnswer.objects.aget()
    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()

    await console.send_json_to(
        {"type": "approve", "draft": held.pk, "text": "It arrives within 3-5 days."}
    )

    sent = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    assert sent[-1]["text"] == "It arrives within 3-5 days."
    stored = await Message.objects.aget(seq=sent[-1]["seq"])
    assert stored.metadata["edited"] is True
    assert stored.metadata["approved_by"] == dana.pk


async def test_supervised_sends_confident_answers_and_holds_unsure_ones(
    connect: Any, kb: Any, llm: Any
) -> None:
    await review_mode("supervised")
    card = kb[CARD_TITLE].id
    llm.script(
        Reply(chunks=[f"Within 3 to 5 working days [A{card}]."]),
        Reply(chunks=["Probably next week."]),
    )
    widget = await connect()
    await resume(widget)

    confident = await ask(widget, "When will my card arrive?")
    assert confident[-1]["text"] == "Within 3 to 5 working days."

    unsure = await receive_held(widget, "Can I pay my rent with bitcoin abroad?")
    assert unsure[-1]["text"] == HELD
    held = await HeldAnswer.objects.aget()
    assert held.text == "Probably next week."


async def test_discarding_a_draft_leaves_the_conversation_with_the_agent(
    connect: Any, kb: Any, llm: Any
) -> None:
    await review_mode("copilot")
    llm.script(Reply(chunks=[f"Soon [A{kb[CARD_TITLE].id}]."]))
    widget = await connect()
    await resume(widget)
    await receive_held(widget, "When will my card arrive?")
    held = await HeldAnswer.objects.aget()
    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()

    await console.send_json_to({"type": "discard", "draft": held.pk})

    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "human"
    )
    for _ in range(50):  # the discard commits just after the claim
        await held.arefresh_from_db()
        if held.status != "pending":
            break
        await asyncio.sleep(0.1)
    assert held.status == "discarded"
    assert not await Message.objects.filter(role="bot").aexists()


async def receive_held(widget: Any, question: str) -> list[dict[str, Any]]:
    await widget.send_json_to(
        {"type": "message", "client_id": "q" + str(hash(question)), "text": question}
    )
    return await receive_until(
        widget, lambda f: f["type"] == "message" and f["text"] == HELD
    )


async def test_a_question_asked_while_a_draft_waited_is_answered_after_it(
    connect: Any, kb: Any, llm: Any
) -> None:
    await review_mode("copilot")
    card = kb[CARD_TITLE].id
    llm.script(
        Reply(chunks=[f"Within 3 to 5 working days [A{card}]."]),
        Reply(chunks=[f"Yes, in the app [A{card}]."]),
    )
    widget = await connect()
    await resume(widget)
    await receive_held(widget, "When will my card arrive?")
    await widget.send_json_to(
        {"type": "message", "client_id": "later", "text": "And can I track it?"}
    )
    later = (await receive_until(widget, lambda f: f["type"] == "ack"))[-1]["seq"]
    held = await HeldAnswer.objects.aget()

    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()
    await console.send_json_to({"type": "approve", "draft": held.pk})

    approved = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    assert approved[-1]["text"] == "Within 3 to 5 working days."
    # The later question is answered next: in copilot, as a draft for a person.
    notice = await receive_until(
        widget, lambda f: f["type"] == "message" and f["text"] == HELD
    )
    assert notice[-1]["reply_to"] == later
    second = await HeldAnswer.objects.exclude(pk=held.pk).aget()
    assert (second.reply_to, second.text) == (later, "Yes, in the app.")


async def test_a_draft_already_handled_claims_nothing(
    connect: Any, kb: Any, llm: Any
) -> None:
    # Dana approves the first draft; the customer asks again and the second
    # draft waits. Eve's console still shows the first one's buttons.
    await review_mode("copilot")
    card = kb[CARD_TITLE].id
    llm.script(
        Reply(chunks=[f"Within 3 to 5 working days [A{card}]."]),
        Reply(chunks=[f"Freeze it in the app [A{card}]."]),
    )
    widget = await connect()
    await resume(widget)
    await receive_held(widget, "When will my card arrive?")
    first = await HeldAnswer.objects.aget()
    dana, eve = [await sync_to_async(make_agent)(n) for n in ("dana", "eve")]
    dana_console, eve_console = await open_console(dana), await open_console(eve)
    await dana_console.connect()
    await eve_console.connect()
    await dana_console.send_json_to({"type": "approve", "draft": first.pk})
    await receive_until(widget, lambda f: f["type"] == "message" and f["role"] == "bot")
    await receive_held(widget, "And if I lost it?")
    assert (await Conversation.objects.aget()).status == "waiting"

    for kind in ("approve", "discard"):
        await eve_console.send_json_to({"type": kind, "draft": first.pk})
        error = await receive_until(eve_console, lambda f: f["type"] == "error")
        assert error[-1]["code"] == "not_pending", kind

    conversation = await Conversation.objects.aget()
    assert (conversation.status, conversation.agent_id) == ("waiting", None)
    assert not await Message.objects.filter(text__contains="Eve").aexists()
