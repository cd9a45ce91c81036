"""A question whose answer was lost with its web process is answered again.

The state such a process leaves is a stored question with nothing after it:
that is what these tests store, through the same action the widget's socket
calls, before the process that would have answered it is gone. The last
test kills a real server mid-answer.
"""

import asyncio
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator
from django.db import transaction
from django.utils import timezone

from conversations import actions, recovery, replies
from conversations.models import Conversation, Message, Visitor, hash_token
from support_bot.asgi import application
from tests import servers
from tests.fake_llm import Reply
from tests.widget import is_bot_message, new_client_id, receive_until, resume, settle

BOUND = 0.5


@pytest.fixture(autouse=True)
def _short_bound(settings: Any) -> None:
    settings.STRANDED_ANSWER_SECONDS = BOUND


async def store_unanswered(token: str, text: str) -> Message:
    """What a web process stored before it stopped mid-answer."""
    visitor = await Visitor.objects.aget(token_hash=hash_token(token))
    posted = await sync_to_async(actions.post_customer_message)(
        visitor, new_client_id(), text
    )
    return posted.message


async def stranded(connect: Any, text: str) -> tuple[str, Message]:
    """A visitor whose question was stored by a process that then stopped,
    long enough ago to count as stranded; their widget is closed."""
    first = await connect()
    await resume(first)
    token: str = first.welcome["token"]
    question = await store_unanswered(token, text)
    await first.disconnect()
    await asyncio.sleep(BOUND)
    return token, question


async def bot_answers(conversation_id: Any) -> list[Message]:
    return [
        m
        async for m in Message.objects.filter(
            conversation_id=conversation_id, role="bot"
        ).order_by("seq")
    ]


async def test_a_resuming_widget_gets_the_answer_its_process_lost(
    connect: Any, kb: Any
) -> None:
    token, question = await stranded(connect, "How do I change my PIN?")

    # The widget reconnects, to another process or the restarted one.
    widget = await connect(token=token)
    frames = await resume(widget, after_seq=question.seq)
    frames += await receive_until(widget, is_bot_message)

    answer = frames[-1]
    assert answer["reply_to"] == question.seq
    assert "PIN" in answer["text"]
    deltas = [f for f in frames if f["type"] == "bot.delta"]
    assert deltas and all(d["stream"] == answer["stream"] for d in deltas)
    assert [m.seq for m in await bot_answers(question.conversation_id)] == [2]


async def test_the_second_of_two_questions_is_answered_after_the_first(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    await resume(first)
    token = first.welcome["token"]
    await store_unanswered(token, "How do I change my PIN?")
    second = await store_unanswered(token, "I lost my card")
    # The first question's answer was stored; the second's, written next
    # one at a time, was lost.
    await sync_to_async(actions.store_bot_reply)(
        second.conversation_id, "At any cash machine.", {"reply_to": 1}
    )
    await first.disconnect()
    await asyncio.sleep(BOUND)

    widget = await connect(token=token)
    frames = await resume(widget, after_seq=3)
    frames += await receive_until(widget, is_bot_message)

    assert frames[-1]["reply_to"] == second.seq
    assert "Freeze" in frames[-1]["text"]


async def test_a_widget_that_resumed_mid_answer_waits_for_it_then_answers(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    await resume(first)
    question = await store_unanswered(first.welcome["token"], "I lost my card")

    # Resumed before the answer could have been written: nothing is answered
    # yet, since the process that stored the question may still be at it.
    await resume(first)
    assert [f for f in await settle(first) if f["type"] == "message"] == []
    assert await bot_answers(question.conversation_id) == []

    frames = await receive_until(first, is_bot_message, seconds=BOUND + 10)
    assert frames[-1]["reply_to"] == question.seq
    assert "Freeze" in frames[-1]["text"]


async def test_an_answer_that_arrives_in_time_is_not_written_twice(
    connect: Any, kb: Any
) -> None:
    asking = await connect()
    await resume(asking)
    other_tab = await connect(token=asking.welcome["token"])
    await resume(other_tab)
    await asking.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "I lost my card"}
    )
    # The other tab reconnects while the answer is being written.
    await resume(other_tab)
    await receive_until(asking, is_bot_message)
    await asyncio.sleep(BOUND * 2)
    await replies.drain()

    conversation = await Conversation.objects.aget()
    assert len(await bot_answers(conversation.pk)) == 1


async def test_two_tabs_resuming_at_once_answer_once(connect: Any, kb: Any) -> None:
    first = await connect()
    await resume(first)
    token = first.welcome["token"]
    question = await store_unanswered(token, "How long does a transfer take?")
    await asyncio.sleep(BOUND)

    tabs = [await connect(token=token) for _ in range(3)]
    await asyncio.gather(*(resume(tab) for tab in tabs))
    for tab in tabs:
        await receive_until(tab, is_bot_message)
    await replies.drain()

    answers = await bot_answers(question.conversation_id)
    assert [(m.seq, m.metadata["reply_to"]) for m in answers] == [(2, 1)]


async def test_a_widget_answers_once_another_claimers_answer_is_lost_too(
    connect: Any, kb: Any
) -> None:
    token, question = await stranded(connect, "I lost my card")
    pending = await sync_to_async(recovery.pending_question)(question.conversation_id)
    assert pending is not None
    # Taken up by another process, which then stopped as well.
    assert await sync_to_async(recovery.claim)(pending)

    widget = await connect(token=token)
    await resume(widget, after_seq=question.seq)
    frames = await receive_until(widget, is_bot_message, seconds=BOUND * 4 + 10)

    assert frames[-1]["reply_to"] == question.seq
    assert len(await bot_answers(question.conversation_id)) == 1


async def test_nothing_is_answered_again_once_a_person_has_the_conversation(
    connect: Any, kb: Any
) -> None:
    first = await connect()
    await resume(first)
    token = first.welcome["token"]
    question = await store_unanswered(token, "How do I change my PIN?")
    # The customer asked for a person after the bot's process stopped.
    visitor = await Visitor.objects.aget(token_hash=hash_token(token))
    await sync_to_async(actions.request_human)(visitor)
    await asyncio.sleep(BOUND)

    again = await connect(token=token)
    await resume(again)
    await asyncio.sleep(BOUND)
    await replies.drain()
    assert await bot_answers(question.conversation_id) == []


async def test_a_claim_is_taken_once_until_it_expires(connect: Any, kb: Any) -> None:
    first = await connect()
    await resume(first)
    question = await store_unanswered(first.welcome["token"], "I lost my card")
    pending = await sync_to_async(recovery.pending_question)(question.conversation_id)
    assert pending is not None and pending.seq == question.seq

    assert not await sync_to_async(recovery.claim)(pending), "claimed too early"
    await asyncio.sleep(BOUND)
    assert await sync_to_async(recovery.claim)(pending)
    assert not await sync_to_async(recovery.claim)(pending)
    # The claimer stopped too: after the bound the question is free again.
    await asyncio.sleep(BOUND)
    assert await sync_to_async(recovery.claim)(pending)


@pytest.mark.django_db(transaction=True)
def test_the_sweep_answers_questions_nobody_is_waiting_on(
    kb: Any, settings: Any
) -> None:
    visitor = Visitor.objects.create(token_hash=hash_token("sweep"))
    stranded = actions.post_customer_message(visitor, "c-1", "I lost my card")
    fresh_visitor = Visitor.objects.create(token_hash=hash_token("fresh"))
    # Still within the time its own process may take to answer.
    fresh = actions.post_customer_message(fresh_visitor, "c-2", "I lost my card")
    # Two questions, the first answered, the second's answer lost.
    two_visitor = Visitor.objects.create(token_hash=hash_token("two"))
    actions.post_customer_message(two_visitor, "c-3", "How do I change my PIN?")
    second = actions.post_customer_message(two_visitor, "c-4", "I lost my card")
    actions.store_bot_reply(
        second.conversation.pk, "At a cash machine.", {"reply_to": 1}
    )
    # Answered by a person, then handed back: nothing is owed.
    handed_back = Visitor.objects.create(token_hash=hash_token("back"))
    back = actions.post_customer_message(handed_back, "c-5", "I lost my card")
    with transaction.atomic():
        locked = actions.lock_conversation(back.conversation.pk)
        actions.append_message(locked, "agent", "I froze it for you.")
        actions.append_system_message(locked, "Our assistant is back.")
    long_ago = timezone.now() - timedelta(seconds=BOUND)
    Message.objects.update(created_at=long_ago)
    Conversation.objects.exclude(pk=fresh.conversation.pk).update(updated_at=long_ago)
    Message.objects.filter(conversation=fresh.conversation).update(
        created_at=timezone.now()
    )

    assert recovery.answer_stranded() == 2
    answer = Message.objects.get(conversation=stranded.conversation, role="bot")
    assert answer.metadata["reply_to"] == stranded.message.seq
    latest = Message.objects.filter(conversation=second.conversation).latest("seq")
    assert (latest.role, latest.metadata["reply_to"]) == ("bot", second.message.seq)
    assert not Message.objects.filter(conversation=fresh.conversation, role="bot")
    assert not Message.objects.filter(conversation=back.conversation, role="bot")
    assert recovery.answer_stranded() == 0


async def test_a_stopping_server_finishes_the_answers_it_is_writing(
    connect: Any, kb: Any, llm: Any, settings: Any
) -> None:
    settings.STRANDED_ANSWER_SECONDS = 10
    lost = kb["Reporting a lost or stolen card"].pk
    llm.script(Reply(chunks=("Freeze the card", f" in the app [A{lost}]."), delay=0.5))
    widget = await connect()
    await resume(widget)
    await widget.send_json_to(
        {"type": "message", "client_id": new_client_id(), "text": "I lost my card"}
    )
    await receive_until(widget, lambda f: f["type"] == "ack")

    server = ApplicationCommunicator(application, {"type": "lifespan"})
    await server.send_input({"type": "lifespan.startup"})
    assert await server.receive_output() == {"type": "lifespan.startup.complete"}
    await server.send_input({"type": "lifespan.shutdown"})
    assert await server.receive_output(timeout=10) == {
        "type": "lifespan.shutdown.complete"
    }

    conversation = await Conversation.objects.aget()
    [answer] = await bot_answers(conversation.pk)
    assert answer.metadata["decision"] == "answer"
    assert answer.text.startswith("Freeze the card in the app")


# --- a real server, killed mid-answer ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_killed_server_s_question_is_answered_after_the_restart(
    tmp_path: Path, fake_llm: Any
) -> None:
    port = servers.free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/crash.sqlite3",
        "REDIS_URL": "",
        "DEBUG": "true",
        "WIDGET_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_llm.base_url,
        # Killed well within the first answer's time.
        "LLM_TIMEOUT": "1.5",
        "STRANDED_ANSWER_SECONDS": "2",
    }
    servers.manage(env, "migrate", "--noinput")
    servers.manage(env, "load_demo")
    log = tmp_path / "server.log"
    # The first answer never comes: its process is killed while it waits.
    fake_llm.script(
        Reply(chunks=("never",), delay=30), Reply(chunks=("Freeze", " the card."))
    )

    server = servers.start_uvicorn(env, port, log)
    try:
        widget = servers.Widget(port)
        widget.resume()
        ack = widget.ask("q-1", "I lost my card")
        # Killed while it waits for the model.
        deadline = time.monotonic() + 20
        while not fake_llm.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake_llm.requests, "the first server never asked the model"
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        widget.close()

        server = servers.start_uvicorn(env, port, log)
        widget = servers.Widget(port, widget.token)
        widget.resume(after_seq=ack["seq"])
        answer = widget.receive_until(servers.is_bot_message)
        widget.close()
    finally:
        servers.stop(server)

    assert answer["reply_to"] == ack["seq"]
    # Asked twice: by the killed server, then by its successor.
    questions = [r["messages"][-1]["content"] for r in fake_llm.requests]
    assert len(questions) == 2 and all("lost my card" in q for q in questions)
    assert "again: its answer was lost" in log.read_text()


def test_a_bound_shorter_than_an_answer_is_refused_at_start() -> None:
    env = {**os.environ, "STRANDED_ANSWER_SECONDS": "10", "LLM_TIMEOUT": "20"}
    refusal = servers.manage_refused(env, "check")
    assert "STRANDED_ANSWER_SECONDS (10) must be longer" in refusal
