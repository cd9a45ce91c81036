"""An agent takes a conversation over live, and gives it back."""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from conversations import actions as conversation_actions
from conversations import recovery
from conversations.models import Conversation, Visitor
from escalation.models import HeldAnswer
from knowledge.models import BotSettings
from support_bot import live
from support_bot.bot.decision import HELD
from tests.agents import make_agent, open_console, receive_type, take_over
from tests.fake_llm import Reply
from tests.widget import ask, new_client_id, receive_until, resume, settle


async def test_console_refuses_anyone_but_agents(connect: Any) -> None:
    customer = await sync_to_async(User.objects.create_user)("customer", password="pw")
    agent = await sync_to_async(make_agent)("dana")

    for user, origin in [
        (None, b"http://127.0.0.1:8000"),
        (customer, b"http://127.0.0.1:8000"),
        (agent, b"https://evil.example"),
    ]:
        console = await open_console(user, origin)
        connected, _ = await console.connect()
        assert not connected, (user, origin)


async def test_agent_claims_replies_and_resolves_live(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    assert (await console.connect())[0]
    await receive_type(console, "queue")

    await widget.send_json_to({"type": "request_human"})
    waiting = await receive_until(widget, lambda f: f["type"] == "queue")
    assert any(f["type"] == "status" and f["status"] == "waiting" for f in waiting)
    assigned = await receive_type(console, "assigned")
    conversation = assigned["conversation"]

    await console.send_json_to({"type": "open", "conversation": conversation})
    await receive_type(console, "transcript", conversation=conversation)
    await console.send_json_to({"type": "claim", "conversation": conversation})
    status = await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] != "waiting"
    )
    assert (status[-1]["status"], status[-1]["agent"]) == ("human", {"name": "Dana"})

    await console.send_json_to(
        {
            "type": "reply",
            "conversation": conversation,
            "client_id": "a1",
            "text": "Hi, Dana here.",
        }
    )
    seen = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "agent"
    )
    assert seen[-1]["text"] == "Hi, Dana here."
    assert seen[-1]["author"] == {"name": "Dana"}

    await widget.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "Thanks Dana"}
    )
    from_customer = await receive_type(
        console, "message", role="customer", text="Thanks Dana"
    )
    assert from_customer["conversation"] == conversation
    frames = await settle(widget)
    assert not any(f["type"] == "message" and f["role"] == "bot" for f in frames), (
        "the bot must stay silent while a person owns the conversation"
    )

    await console.send_json_to({"type": "resolve", "conversation": conversation})
    closed = await receive_until(widget, lambda f: f["type"] == "status")
    assert (closed[-1]["status"], closed[-1]["reason"]) == ("closed", "resolved")

    answer = await ask(widget, "I lost my card")
    assert answer[-1]["sources"], "a reopened conversation is the bot's again"
    assert (await Conversation.objects.aget()).status == "bot"


async def test_notes_never_reach_the_customer(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()
    item = (await receive_type(console, "queue"))["items"][0]
    await console.send_json_to({"type": "open", "conversation": item["conversation"]})

    await console.send_json_to(
        {"type": "note", "conversation": item["conversation"], "text": "VIP, be kind"}
    )

    note = await receive_type(console, "note")
    assert note["text"] == "VIP, be kind"
    assert all("VIP" not in str(f) for f in await settle(widget))


async def test_hand_back_lets_the_bot_answer_again(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)

    await console.send_json_to({"type": "hand_back", "conversation": conversation})

    back = await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "bot"
    )
    assert back[-1]["reason"] == "handed_back"
    answer = await ask(widget, "How do I change my PIN?")
    assert answer[-1]["sources"]


async def test_second_agent_gets_a_clear_refusal(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    dana, sam = [await sync_to_async(make_agent)(n) for n in ("dana", "sam")]
    first, second = await open_console(dana), await open_console(sam)
    await first.connect()
    await second.connect()
    conversation = (await receive_type(first, "queue"))["items"][0]["conversation"]

    await first.send_json_to({"type": "claim", "conversation": conversation})
    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "human"
    )
    await second.send_json_to({"type": "claim", "conversation": conversation})

    refusal = await receive_type(second, "error")
    assert refusal["code"] == "already_claimed"
    assert "Dana" in refusal["message"]


async def test_only_the_agent_who_has_it_shows_the_customer_typing(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    dana_console, conversation = await take_over(widget)
    sam = await sync_to_async(make_agent)("sam")
    sam_console = await open_console(sam)
    assert (await sam_console.connect())[0]
    await settle(widget)

    for active in (True, False):
        await sam_console.send_json_to(
            {"type": "typing", "conversation": conversation, "active": active}
        )
    refusal = await receive_type(sam_console, "error")
    assert (refusal["code"], refusal["conversation"]) == ("not_owner", conversation)
    assert not [f for f in await settle(widget) if f["type"] == "typing"]

    for active in (True, False):
        await dana_console.send_json_to(
            {"type": "typing", "conversation": conversation, "active": active}
        )
    typing = [f for f in await settle(widget) if f["type"] == "typing"]
    assert [(f["name"], f["active"]) for f in typing] == [
        ("Dana", True),
        ("Dana", False),
    ]


async def test_customer_token_opens_nothing_on_the_console(connect: Any) -> None:
    widget = await connect()
    console = await open_console(None)
    console.scope["query_string"] = f"token={widget.welcome['token']}".encode()

    connected, _ = await console.connect()

    assert not connected


async def test_an_agents_first_reply_is_timed_once(connect: Any, kb: Any) -> None:
    from prometheus_client import REGISTRY

    def replies_timed() -> float:
        value = REGISTRY.get_sample_value(
            "support_bot_first_response_seconds_count", {"responder": "agent"}
        )
        return value or 0.0

    before = replies_timed()
    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    await receive_until(widget, lambda f: f["type"] == "queue")
    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()
    conversation = (await receive_type(console, "queue"))["items"][0]["conversation"]
    await console.send_json_to({"type": "claim", "conversation": conversation})
    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "human"
    )

    for n in range(2):
        await console.send_json_to(
            {
                "type": "reply",
                "conversation": conversation,
                "client_id": f"r{n}",
                "text": "Hi",
            }
        )
        await receive_type(console, "ack", client_id=f"r{n}")

    assert replies_timed() == before + 1


async def test_the_customer_learns_when_someone_comes_online(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    told = await receive_until(widget, lambda f: f["type"] == "queue")
    assert told[-1]["agents_online"] is False

    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    await console.connect()  # signing in routes what is queued to her

    offered = await receive_until(widget, lambda f: f["type"] == "queue")
    assert (offered[-1]["agents_online"], offered[-1]["position"]) == (True, 1)


async def test_a_status_change_that_arrives_late_does_not_undo_a_later_one(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    _, conversation = await take_over(widget)
    await settle(widget)

    # The "waiting" of the request, delivered after the claim (it was
    # published by another, busier web process, say).
    frame: dict[str, Any] = {"type": "status", "conversation": conversation}
    frame |= {"status": "waiting", "reason": "customer_request", "agent": None}
    group = live.conversation_group(conversation)
    await live.asend(group, {"type": "conversation.status", "frame": frame})

    shown = [f for f in await settle(widget) if f["type"] == "status"]
    assert [(f["status"], f["agent"], f["reason"]) for f in shown] == [
        ("human", {"name": "Dana"}, None)
    ]


async def test_asking_for_a_person_says_so_once(connect: Any, kb: Any) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")

    await widget.send_json_to({"type": "request_human"})

    statuses = [f for f in await settle(widget) if f["type"] == "status"]
    assert [(f["status"], f["reason"]) for f in statuses] == [
        ("waiting", "customer_request")
    ]


async def test_each_heartbeat_brings_the_queue_with_offers_missed_live(
    connect: Any, kb: Any
) -> None:
    from escalation.models import Escalation

    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    await receive_until(widget, lambda f: f["type"] == "queue")
    dana = await sync_to_async(make_agent)("dana", online=False)
    console = await open_console(dana)
    assert (await console.connect())[0]
    await receive_type(console, "queue")
    await settle(console)

    # Offered to Dana with no live event: the layer lost it.
    await Escalation.objects.aupdate(assigned_to=dana, status="assigned")
    await console.send_json_to({"type": "heartbeat"})

    await receive_type(console, "heartbeat")
    queue = await receive_type(console, "queue")
    [item] = queue["items"]
    assert (item["status"], item["assigned_to"]) == (
        "waiting",
        {"id": dana.pk, "name": "Dana"},
    )


async def asked_while_a_person_has_it(connect: Any) -> tuple[Any, Any, str, int]:
    """A customer whose conversation an agent took over asks a question.
    Returns the widget, the console, the conversation and the question's seq."""
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await widget.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "I lost my card"}
    )
    ack = await receive_until(widget, lambda f: f["type"] == "ack")
    return widget, console, conversation, int(ack[-1]["seq"])


async def test_a_question_nobody_answered_is_answered_after_the_hand_back(
    connect: Any, kb: Any
) -> None:
    # Asked while the person had it, and left unanswered by them.
    widget, console, conversation, seq = await asked_while_a_person_has_it(connect)

    await console.send_json_to({"type": "hand_back", "conversation": conversation})

    frames = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    assert frames[-1]["reply_to"] == seq
    assert "Freeze" in frames[-1]["text"]


async def test_after_a_hand_back_the_bot_says_nothing_it_is_unsure_of(
    connect: Any, kb: Any
) -> None:
    # The customer's last words were for the person, not a question the
    # articles answer: the bot must not hand the conversation straight back.
    widget = await connect()
    await resume(widget)
    console, conversation = await take_over(widget)
    await widget.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "ok thanks bye"}
    )
    await receive_until(widget, lambda f: f["type"] == "ack")

    await console.send_json_to({"type": "hand_back", "conversation": conversation})
    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "bot"
    )

    frames = await settle(widget)
    assert not [f for f in frames if f["type"] in ("message", "typing", "bot.delta")]
    stored = await Conversation.objects.aget()
    assert stored.status == "bot"
    assert await stored.escalations.acount() == 1
    # Nor is it owed later, when the widget comes back or the sweep runs.
    assert await sync_to_async(recovery.pending_question)(conversation) is None


async def test_a_question_the_person_answered_is_not_answered_again(
    connect: Any, kb: Any
) -> None:
    widget, console, conversation, _ = await asked_while_a_person_has_it(connect)
    await console.send_json_to(
        {
            "type": "reply",
            "conversation": conversation,
            "client_id": "a1",
            "text": "I froze it for you.",
        }
    )
    await receive_type(console, "ack", client_id="a1")

    await console.send_json_to({"type": "hand_back", "conversation": conversation})
    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "bot"
    )

    frames = await settle(widget)
    assert not [f for f in frames if f["type"] == "message" and f["role"] == "bot"]


async def test_a_suggested_reply_is_the_models_draft_and_reaches_nobody_else(
    connect: Any, kb: Any, llm: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    console, conversation = await take_over(widget)
    await settle(widget)
    llm.script(Reply(chunks=["Open the app, ", "then Card settings."]))

    await console.send_json_to({"type": "suggest", "conversation": conversation})

    suggestion = await receive_type(console, "suggestion")
    assert suggestion["conversation"] == conversation
    assert suggestion["text"] == "Open the app, then Card settings."
    assert "How do I change my PIN?" in llm.requests[-1]["messages"][-1]["content"]
    assert not [
        f for f in await settle(widget) if f["type"] in ("message", "bot.delta")
    ]


async def test_a_suggestion_the_model_cannot_write_gets_a_typed_error(
    connect: Any, kb: Any, llm: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    console, conversation = await take_over(widget)
    llm.script(Reply(status=500), Reply(status=500), Reply(status=500))

    await console.send_json_to({"type": "suggest", "conversation": conversation})

    error = await receive_type(console, "error")
    assert (error["code"], error["conversation"]) == ("model_unavailable", conversation)
    # The console still works.
    await console.send_json_to({"type": "heartbeat"})
    await receive_type(console, "heartbeat")


async def test_no_suggestion_when_the_bot_has_no_answer(connect: Any, kb: Any) -> None:
    # The offline responder (no model configured) has no article for this:
    # its words to the customer ("I've asked a person") are no draft.
    widget = await connect()
    await resume(widget)
    await ask(widget, "What's the weather like on Mars?")
    console, conversation = await take_over(widget)

    await console.send_json_to({"type": "suggest", "conversation": conversation})

    error = await receive_type(console, "error")
    assert (error["code"], error["conversation"]) == ("no_suggestion", conversation)


async def test_a_suggestion_uses_the_article_the_live_answer_used(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    answer = (await ask(widget, "my card still hasn't arrived"))[-1]
    assert answer["sources"]
    console, conversation = await take_over(widget)

    await console.send_json_to({"type": "suggest", "conversation": conversation})

    suggestion = await receive_type(console, "suggestion")
    assert suggestion["sources"] == answer["sources"]


async def test_a_question_asked_before_the_hand_over_is_not_answered_again(
    connect: Any, kb: Any
) -> None:
    # Asked while the bot had the conversation: its answer is the bot's to
    # give then, and may still be on its way from another web process when a
    # person hands the conversation back. Stored here without that answer.
    widget = await connect()
    await resume(widget)
    visitor = await Visitor.objects.aget()
    await sync_to_async(conversation_actions.post_customer_message_once)(
        visitor, "asked-before", "I lost my card"
    )
    console, conversation = await take_over(widget)

    await console.send_json_to({"type": "hand_back", "conversation": conversation})
    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "bot"
    )

    frames = await settle(widget)
    assert not [f for f in frames if f["type"] == "message" and f["role"] == "bot"]


async def test_in_copilot_mode_the_hand_back_drafts_the_owed_answer(
    connect: Any, kb: Any
) -> None:
    await BotSettings.objects.acreate(pk=1, review_mode="copilot")
    widget, console, conversation, seq = await asked_while_a_person_has_it(connect)

    await console.send_json_to({"type": "hand_back", "conversation": conversation})

    # The customer is told the answer is being checked; a person gets a draft.
    await receive_until(widget, lambda f: f.get("text") == HELD)
    held = await HeldAnswer.objects.aget()
    assert held.reply_to == seq and "Freeze" in held.text
