"""Nothing is lost or doubled across reconnects, retries and concurrent writers."""

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from conversations import actions, replies
from conversations.models import Conversation, Message, Visitor
from support_bot import live
from support_bot.db import db_async
from tests.fake_llm import Reply
from tests.widget import (
    ask,
    is_bot_message,
    new_client_id,
    receive_until,
    resume,
    settle,
    stored_frames,
)


def store_without_live_event(conversation_id: Any, text: str) -> None:
    """A message whose live event a socket never gets: the layer dropped it,
    or it was committed after the socket's hello read the conversation but
    before the socket joined the conversation's group."""
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation_id)
        locked.last_seq += 1
        locked.save()
        Message.objects.create(
            conversation=locked, seq=locked.last_seq, role="system", text=text
        )


async def test_reconnect_replays_missed_messages(connect: Any, kb: Any) -> None:
    first = await connect()
    await resume(first)
    await ask(first, "How do I change my PIN?")
    token = first.welcome["token"]
    await first.disconnect()

    second = await connect(token=token)
    frames = await resume(second, after_seq=1)

    replayed = [f for f in frames if f["type"] == "message"]
    assert [(f["seq"], f["role"], f["replay"]) for f in replayed] == [(2, "bot", True)]
    assert frames[-2] == {"type": "resumed", "last_seq": 2}
    assert frames[-1]["status"] == "bot"


async def test_retried_client_id_is_stored_once_and_answered_once(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    client_id = new_client_id()
    await ask(widget, "How do I change my PIN?", client_id)

    # The widget reconnected and sent its outbox again.
    again = await connect(token=widget.welcome["token"])
    await resume(again, after_seq=2)
    await again.send_json_to(
        {"type": "message", "client_id": client_id, "text": "How do I change my PIN?"}
    )

    ack = await again.receive_json_from()
    assert ack["type"] == "ack"
    assert (ack["seq"], ack["duplicate"]) == (1, True)
    assert stored_frames(await settle(again)) == [], "answered twice"
    assert await Message.objects.acount() == 2


async def test_seq_stays_gap_free_under_concurrent_writers(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    conversation = await Conversation.objects.aget()
    visitor = await sync_to_async(lambda: conversation.visitor)()

    def post(n: int) -> None:
        actions.post_customer_message_once(visitor, f"concurrent-{n}", f"hello {n}")

    await asyncio.gather(*(db_async(post)(n) for n in range(20)))

    seqs = [m.seq async for m in Message.objects.order_by("seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    await conversation.arefresh_from_db()
    assert conversation.last_seq == seqs[-1]


async def test_socket_fills_a_gap_left_by_a_lost_live_event(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    conversation = await Conversation.objects.aget()
    # As if the channel layer dropped the event for seq 3.
    await db_async(store_without_live_event)(conversation.pk, "lost")
    await widget.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "I lost my card"}
    )

    frames = await receive_until(
        widget, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    seqs = [f["seq"] for f in frames if f["type"] == "message"]
    assert seqs == [3, 4, 5]


async def test_replay_carries_the_customers_earlier_rating(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, "How do I change my PIN?")
    await widget.send_json_to({"type": "feedback", "seq": 2, "rating": "down"})
    await receive_until(widget, lambda f: f["type"] == "feedback.saved")

    again = await connect(token=widget.welcome["token"])
    frames = await resume(again)

    ratings = {f["seq"]: f["feedback"] for f in frames if f["type"] == "message"}
    assert ratings == {1: None, 2: "down"}


async def test_resume_past_the_end_does_not_mute_the_socket(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget, after_seq=10**12)

    frames = await ask(widget, "How do I change my PIN?")

    assert [f["seq"] for f in frames if f["type"] == "message"] == [1, 2]


async def test_socket_that_never_resumes_still_gets_live_messages(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    await resume(first)
    await ask(first, "How do I change my PIN?")
    returning = await connect(token=first.welcome["token"])

    frames = await ask(returning, "I lost my card")

    assert [f["seq"] for f in frames if f["type"] == "message"] == [3, 4]


async def test_closing_mid_answer_still_stores_the_whole_answer(
    connect: Any, kb: Any, settings: Any
) -> None:
    settings.OFFLINE_STREAM_DELAY_MS = 20
    widget = await connect()
    await resume(widget)
    await widget.send_json_to(
        {"type": "message", "client_id": "q", "text": "How do I change my PIN?"}
    )
    await receive_until(widget, lambda f: f["type"] == "bot.delta")

    await widget.disconnect()
    await replies.drain()

    answer = await Message.objects.aget(role="bot")
    assert not answer.metadata.get("interrupted")
    assert answer.text.startswith("You can change your PIN")
    assert (await Conversation.objects.aget()).status == "bot"


async def test_two_tabs_starting_at_once_share_one_conversation(
    transactional_db: None,
) -> None:
    session = await db_async(actions.open_visitor_session)(None)

    await asyncio.gather(
        *(
            db_async(actions.post_customer_message_once)(
                session.visitor, f"tab-{n}", "first words"
            )
            for n in range(4)
        )
    )

    assert await Conversation.objects.acount() == 1
    seqs = [m.seq async for m in Message.objects.order_by("seq")]
    assert seqs == [1, 2, 3, 4]


async def asked_with_another_tab_open(connect: Any) -> tuple[list[Any], list[Any]]:
    """A visitor's second question, asked in one tab while another is open:
    the frames of the asking tab and of the other one, up to the answer."""
    asking = await connect()
    await resume(asking)
    await ask(asking, "How do I change my PIN?")
    other = await connect(token=asking.welcome["token"])
    await resume(other, after_seq=2)

    asked = await ask(asking, "And how do I freeze my card?")
    seen = await receive_until(
        other, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    return asked + await settle(asking), seen + await settle(other)


async def test_the_stored_answer_ends_the_bots_typing_notice(
    connect: Any, kb: Any, monkeypatch: Any
) -> None:
    # Every answer takes longer than the wait before the other sockets are
    # told that the bot is writing.
    monkeypatch.setattr(replies._LiveText, "LAYER_INTERVAL", 0.0)

    asked, seen = await asked_with_another_tab_open(connect)

    # The other tab gets everything through the layer, in the order it was sent.
    answer = next(f for f in seen if f["type"] == "message" and f["role"] == "bot")
    notice = {
        "type": "typing",
        "role": "bot",
        "name": answer["author"]["name"],
        "active": True,
        "stream": answer["stream"],
        "reply_to": answer["reply_to"],
    }
    typing = [f for f in seen if f["type"] == "typing"]
    # Once, or twice when the other tab's joining reached the answer only
    # after its notice went out (the answer then sends it all again).
    assert typing[:1] == [notice] and all(f == notice for f in typing)
    assert seen.index(typing[-1]) < seen.index(answer)
    # The asking tab had it directly, once, before the first piece.
    assert [f for f in asked if f["type"] == "typing"] == [notice]
    first_delta = next(f for f in asked if f["type"] == "bot.delta")
    assert asked.index(notice) < asked.index(first_delta)


async def test_a_quick_answer_reaches_other_tabs_as_the_stored_message_alone(
    connect: Any, kb: Any, monkeypatch: Any
) -> None:
    # Every answer is stored before the other sockets would be told anything.
    monkeypatch.setattr(replies._LiveText, "LAYER_INTERVAL", 60.0)

    asked, seen = await asked_with_another_tab_open(connect)

    assert [(f["type"], f.get("role")) for f in seen] == [
        ("message", "customer"),
        ("message", "bot"),
    ]
    # The asking tab still saw the bot typing and the answer stream.
    kinds = [f["type"] for f in asked]
    assert kinds.index("typing") < kinds.index("bot.delta") < kinds.index("message", 2)


async def test_other_tabs_see_the_bot_typing_while_its_answer_is_stored(
    connect: Any, kb: Any, monkeypatch: Any
) -> None:
    # The model is quick; storing the answer is not (a busy database).
    monkeypatch.setattr(replies._LiveText, "LAYER_INTERVAL", 0.05)
    store = actions.store_bot_reply

    def slow_store(*args: Any, **kwargs: Any) -> Message:
        time.sleep(0.3)
        return store(*args, **kwargs)

    monkeypatch.setattr(actions, "store_bot_reply", slow_store)

    _, seen = await asked_with_another_tab_open(connect)

    kinds = [f["type"] for f in seen]
    assert "typing" in kinds
    assert kinds.index("typing") < kinds.index("message", 1)


async def test_a_slow_socket_has_every_piece_before_the_answer_is_stored() -> None:
    # The asking socket takes the first piece slowly; it is done just as the
    # other sockets fall due, in a loop turn that another socket keeps busy.
    got: list[str] = []
    loop = asyncio.get_running_loop()

    class SlowSocket:
        due_at = 0.0
        channel_name = "asking"

        async def reply_typing(self, frame: dict[str, Any]) -> None:
            pass

        async def reply_delta(self, frame: dict[str, Any]) -> None:
            if not got:
                written = loop.create_future()
                loop.call_at(self.due_at - 0.001, written.set_result, None)
                await written
            got.append(frame["text"])

        async def reply_stored(self, message: Message) -> None:
            pass

    socket = SlowSocket()
    typing = {"type": "typing", "role": "bot", "stream": "s", "reply_to": 1}
    text = replies._LiveText("conversation.test", "s", 1, socket, typing=typing)
    socket.due_at = loop.time() + text.LAYER_INTERVAL
    await text.start()
    loop.call_soon(time.sleep, text.LAYER_INTERVAL * 1.2)
    for piece in ("One ", "two ", "three."):
        await text.add(piece)
    await text.finish()

    # What the answer's message follows: every piece, once, in order.
    assert "".join(got) == "One two three."
    text.close()


async def test_a_typing_notice_arriving_after_its_answer_is_not_shown(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    frames = await ask(widget, "How do I change my PIN?")
    await settle(widget)
    answer = frames[-1]
    group = live.conversation_group(answer["conversation"])

    def notice(stream: str, reply_to: int) -> dict[str, Any]:
        frame = {"type": "typing", "role": "bot", "name": "Bot", "active": True}
        frame |= {"stream": stream, "reply_to": reply_to}
        return {"type": "conversation.typing", "frame": frame}

    await live.asend(group, notice(answer["stream"], answer["reply_to"]))
    assert await settle(widget) == []
    await live.asend(group, notice("a-later-answer", answer["seq"] + 1))
    assert [f["stream"] for f in await settle(widget)] == ["a-later-answer"]


async def test_a_new_tab_is_not_shown_typing_for_an_answer_stored_before_it(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    await resume(first)
    frames = await ask(first, "How do I change my PIN?")
    answer = frames[-1]
    # The notice of an answer stored before this tab said hello, late.
    late = await connect(token=first.welcome["token"])
    await resume(late, after_seq=answer["seq"])
    frame = {"type": "typing", "role": "bot", "name": "Bot", "active": True}
    frame |= {"stream": answer["stream"], "reply_to": answer["reply_to"]}
    group = live.conversation_group(answer["conversation"])
    await live.asend(group, {"type": "conversation.typing", "frame": frame})
    assert await settle(late) == []


async def test_a_live_event_that_fails_leaves_the_socket_open(
    connect: Any, kb: Any
) -> None:
    widget = await connect()
    await resume(widget)
    frames = await ask(widget, "How do I change my PIN?")
    group = live.conversation_group(frames[-1]["conversation"])
    # An event this version cannot read: another version of the server during
    # a rolling deploy, say. Its handler fails.
    await live.asend(group, {"type": "conversation.message", "frame": {"seq": 9}})
    assert await settle(widget) == []

    answer = await ask(widget, "And how do I freeze my card?")
    assert [f["seq"] for f in answer if f["type"] == "message"] == [3, 4]


async def test_resume_sends_what_was_stored_while_the_socket_joined(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    await resume(first)
    answer = (await ask(first, "How do I change my PIN?"))[-1]
    late = await connect(token=first.welcome["token"])
    assert late.welcome["last_seq"] == 2
    await db_async(store_without_live_event)(answer["conversation"], "in between")

    frames = await resume(late, after_seq=0)

    sent = [(f["seq"], f["replay"]) for f in frames if f["type"] == "message"]
    assert sent == [(1, True), (2, True), (3, False)]


async def test_resume_sends_each_message_asked_for_once(connect: Any, kb: Any) -> None:
    first = await connect()
    await resume(first)
    await ask(first, "How do I change my PIN?")
    second = await connect(token=first.welcome["token"])
    # Before the second socket resumes, a new question and its answer
    # reach it live.
    await ask(first, "And how do I freeze my card?")
    live = await receive_until(
        second, lambda f: f["type"] == "message" and f["role"] == "bot"
    )

    assert [f["seq"] for f in live if f["type"] == "message"] == [3, 4]

    frames = await resume(second, after_seq=0) + await settle(second)

    sent = [(f["seq"], f["replay"]) for f in frames if f["type"] == "message"]
    assert sent == [(1, True), (2, True), (3, True), (4, True)]


async def test_a_tab_that_opens_mid_answer_sees_it_stream(
    connect: Any, kb: Any, llm: Any
) -> None:
    card = kb["How long does a new card take to arrive?"].id
    chunks = ["Your card ", "arrives in ", f"3 to 5 working days [A{card}]."]
    llm.script(Reply(chunks=chunks, delay=0.5, chunk_delay=0.3), Reply(chunks=["Yes."]))
    first = await connect()
    await resume(first)
    for text in ("Where's my card?", "Is it on its way?"):
        await first.send_json_to(
            {"type": "message", "client_id": new_client_id(), "text": text}
        )
        await receive_until(first, lambda f: f["type"] == "ack")
    # The first question is still being answered when the other tab opens,
    # after the second question.
    other = await connect(token=first.welcome["token"])
    assert other.welcome["last_seq"] == 2
    await resume(other, after_seq=2)

    frames = await receive_until(
        other, lambda f: f["type"] == "message" and f["role"] == "bot"
    )

    answer = frames[-1]
    assert answer["reply_to"] == 1
    deltas = [f for f in frames if f["type"] == "bot.delta"]
    assert deltas and all(f["stream"] == answer["stream"] for f in deltas)


async def test_a_tab_that_opens_after_the_first_pieces_gets_them_too(
    connect: Any, kb: Any, llm: Any
) -> None:
    card = kb["How long does a new card take to arrive?"].id
    chunks = ["Your card ", "arrives in ", f"3 to 5 working days [A{card}]."]
    llm.script(Reply(chunks=chunks, chunk_delay=0.4))
    first = await connect()
    await resume(first)
    await first.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "Where's my card?"}
    )
    await receive_until(first, lambda f: f["type"] == "bot.delta")

    # Another tab opens with the answer under way.
    other = await connect(token=first.welcome["token"])
    await resume(other)
    frames = await receive_until(other, is_bot_message)

    assert any(f["type"] == "typing" and f.get("role") == "bot" for f in frames)
    deltas = [f for f in frames if f["type"] == "bot.delta"]
    assert deltas, "no piece of the answer streamed to the new tab"
    assert deltas[0]["index"] == 0
    assert deltas[0]["text"].startswith("Your card ")


async def test_resume_finds_a_first_conversation_started_while_the_tab_said_hello(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    late = await connect(token=first.welcome["token"])
    assert late.welcome["conversation"] is None

    def start_without_live_event() -> Any:
        # The other tab's first message, its notice sent before this socket
        # was listening.
        conversation = Conversation.objects.create(visitor=Visitor.objects.get())
        store_without_live_event(conversation.pk, "Hello?")
        return conversation.pk

    conversation_id = str(await db_async(start_without_live_event)())
    frames = await resume(late, after_seq=0)

    sent = [(f["seq"], f["text"]) for f in frames if f["type"] == "message"]
    assert sent == [(1, "Hello?")]
    assert frames[-1]["conversation"] == conversation_id
    # And it is live in that conversation from now on.
    await ask(first, "How do I change my PIN?")
    answer = await receive_until(
        late, lambda f: f["type"] == "message" and f["role"] == "bot"
    )
    assert answer[-1]["conversation"] == conversation_id


async def test_a_tab_learns_a_first_conversation_started_by_asking_for_a_person(
    connect: Any, kb: Any
) -> None:
    """Another tab started the visitor's first conversation with "Talk to a
    person": this tab hears it is waiting, not only its notice."""
    first = await connect()
    await resume(first)
    second = await connect(token=first.welcome["token"])
    await resume(second)

    await first.send_json_to({"type": "request_human"})

    frames = await receive_until(
        second, lambda f: f["type"] == "status" and f["status"] == "waiting"
    )
    assert frames[-1]["conversation"] is not None
    place = await receive_until(second, lambda f: f["type"] == "queue")
    assert place[-1]["position"] == 1
