"""Appending messages: the one-statement way and the general way agree."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import actions
from conversations.models import Conversation, Message, Visitor
from conversations.rows import APPEND_AT_ONCE_VENDORS

pytestmark = pytest.mark.django_db(transaction=True)


def new_visitor() -> Visitor:
    return actions.open_visitor_session(None).visitor


def test_messages_of_an_open_conversation_take_the_next_seqs() -> None:
    visitor = new_visitor()
    first = actions.post_customer_message(visitor, "c-1", "My card is lost.")
    assert (first.conversation_created, first.message.seq) == (True, 1)
    conversation_id = first.conversation.id
    reply = actions.store_bot_reply(conversation_id, "Freeze it in the app.", {})
    second = actions.post_customer_message(visitor, "c-2", "Done, thanks.")

    assert (reply.seq, reply.role) == (2, Message.Role.BOT)
    assert reply.metadata["author"]["name"], "the bot signs its reply"
    assert (second.conversation.id, second.message.seq) == (conversation_id, 3)
    assert second.created and not second.conversation_created
    conversation = Conversation.objects.get(pk=conversation_id)
    stored = list(conversation.messages.order_by("seq"))
    assert [(m.seq, m.role, m.text) for m in stored] == [
        (1, "customer", "My card is lost."),
        (2, "bot", "Freeze it in the app."),
        (3, "customer", "Done, thanks."),
    ]
    assert conversation.last_seq == 3
    assert conversation.memory_tokens == sum(m.token_count for m in stored)
    # What the callers got back is what was stored.
    assert second.conversation.last_seq == 3
    assert second.conversation.memory_tokens == conversation.memory_tokens
    assert second.message.pk == stored[2].pk
    assert second.message.created_at == stored[2].created_at


def test_an_open_conversation_takes_a_message_in_one_statement_where_it_can() -> None:
    visitor = new_visitor()
    conversation_id = actions.post_customer_message(
        visitor, "c-1", "Hi"
    ).conversation.id

    with CaptureQueriesContext(connection) as posting:
        actions.post_customer_message(visitor, "c-2", "Where is my card?")
    with CaptureQueriesContext(connection) as replying:
        actions.store_bot_reply(conversation_id, "On its way.", {})

    # Lock, insert and counters, in a transaction where it cannot. (The tests
    # read the bot's settings afresh each time; the server keeps them.)
    expected = 1 if connection.vendor in APPEND_AT_ONCE_VENDORS else 3
    assert (writes(posting), writes(replying)) == (expected, expected)


def writes(queries: CaptureQueriesContext) -> int:
    return sum("conversations_" in q["sql"] for q in queries.captured_queries)


def test_a_message_to_a_closed_conversation_reopens_it() -> None:
    visitor = new_visitor()
    conversation_id = actions.post_customer_message(
        visitor, "c-1", "Hi"
    ).conversation.id
    Conversation.objects.filter(pk=conversation_id).update(
        status=Conversation.Status.CLOSED
    )

    posted = actions.post_customer_message(visitor, "c-2", "One more question.")

    assert (posted.conversation.id, posted.message.seq) == (conversation_id, 2)
    assert posted.conversation.status == Conversation.Status.BOT
    assert Conversation.objects.get(pk=conversation_id).status == "bot"


def test_a_resent_client_id_is_stored_once() -> None:
    visitor = new_visitor()
    first = actions.post_customer_message_once(visitor, "c-1", "Hi")
    again = actions.post_customer_message_once(visitor, "c-1", "Hi")

    assert again.message.pk == first.message.pk and not again.created
    assert Message.objects.count() == 1
    assert Conversation.objects.get().last_seq == 1


@pytest.mark.parametrize("conversation_id", [uuid.uuid4(), "not-a-uuid"])
def test_a_reply_to_no_conversation_is_refused(conversation_id: object) -> None:
    with pytest.raises(actions.ActionError) as refused:
        actions.store_bot_reply(conversation_id, "Hello?", {})
    assert refused.value.code == "not_found"
    assert Message.objects.count() == 0
