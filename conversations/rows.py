"""The statements every answer makes, written once in plain SQL.

Each answer locks its conversation, appends a message and moves the
conversation's counters, twice (the question and the answer), and reads the
recent turns once. Through the ORM each of those statements cost about a
millisecond of CPU to build and read back, several times the statement
itself (docs/performance.md). Here they go through Django's own connection,
so transactions, `on_commit` and the choice of database stay Django's; values
go in through the fields' own adapters and come back through the same
converters the ORM applies, so PostgreSQL and SQLite read alike.

On PostgreSQL the common append (to an open conversation, with no hand-over
to people) is one statement that also commits: updating the conversation's row
takes the same lock the general way takes, and a data-modifying WITH inserts
the message with the seq it just took. Fewer round trips matter beyond their
own cost here: a database thread takes the interpreter's lock back after each
one, and waits for it while the event loop runs.

Everything else about conversations still goes through the ORM.
"""

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Field, Model
from django.db.models.expressions import Col
from django.db.models.signals import post_save
from django.utils import timezone

from .models import Conversation, Message

Converter = Callable[[Any, Any, Any], Any]


def _quote(name: str) -> str:
    quoted: str = connection.ops.quote_name(name)
    return quoted


def _field(model: type[Model], name: str) -> "Field[Any, Any]":
    field: Field[Any, Any] = model._meta.get_field(name)  # type: ignore[assignment]
    return field


def _column(model: type[Model], name: str) -> str:
    """The quoted column of field `name` ("visitor" is "visitor_id")."""
    return _quote(_field(model, name).column)


@functools.cache
def _readers(
    model: type[Model], vendor: str
) -> tuple[str, list[tuple[Col, list[Converter]]]]:
    """The column list of `model` and, per column, what turns a value read
    from `vendor` into the field's Python value (as the ORM's compiler does)."""
    table = model._meta.db_table
    readers = []
    for field in model._meta.concrete_fields:
        col = field.get_col(table)
        converters = connection.ops.get_db_converters(col)
        converters += col.get_db_converters(connection)
        readers.append((col, converters))
    columns = ", ".join(_quote(f.column) for f in model._meta.concrete_fields)
    return columns, readers


def _instance(model: type[Model], row: Sequence[Any]) -> Any:
    _, readers = _readers(model, connection.vendor)
    values = []
    for value, (col, converters) in zip(row, readers, strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        values.append(value)
    names = [f.attname for f in model._meta.concrete_fields]
    return model.from_db(connection.alias, names, values)


def _prep(model: type[Model], name: str, value: Any) -> Any:
    return _field(model, name).get_db_prep_save(value, connection)


def _lock_clause() -> str:
    if not connection.features.has_select_for_update:
        # SQLite: the transaction took the database's write lock at BEGIN.
        return ""
    if connection.features.has_select_for_no_key_update:
        return " FOR NO KEY UPDATE"
    return " FOR UPDATE"


def lock_conversation_row(conversation_id: Any) -> Conversation | None:
    """The conversation, its row locked until the transaction ends."""
    where = f"{_column(Conversation, 'id')} = %s"
    return _lock_one(where, _prep(Conversation, "id", conversation_id))


def lock_latest_conversation(visitor_id: Any) -> Conversation | None:
    """The visitor's newest conversation, its row locked, or None."""
    where = (
        f"{_column(Conversation, 'visitor')} = %s"
        f" ORDER BY {_column(Conversation, 'created_at')} DESC LIMIT 1"
    )
    return _lock_one(where, _prep(Conversation, "visitor", visitor_id))


def _lock_one(where: str, param: Any) -> Conversation | None:
    columns, _ = _readers(Conversation, connection.vendor)
    table = _quote(Conversation._meta.db_table)
    sql = f"SELECT {columns} FROM {table} WHERE {where}{_lock_clause()}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [param])
        row = cursor.fetchone()
    return None if row is None else _instance(Conversation, row)


def insert_message(
    conversation: Conversation,
    *,
    seq: int,
    role: str,
    text: str,
    client_id: str | None,
    token_count: int,
    metadata: dict[str, Any],
) -> Message:
    """INSERT one message; sends post_save as `Message.objects.create` does."""
    values = {
        "conversation": conversation.pk,
        "seq": seq,
        **_message_values(role, text, client_id, token_count, metadata),
    }
    sql = "INSERT INTO {} ({}) VALUES ({}) RETURNING {}".format(
        _quote(Message._meta.db_table),
        ", ".join(_column(Message, name) for name in values),
        ", ".join(["%s"] * len(values)),
        _column(Message, "id"),
    )
    params = [_prep(Message, name, value) for name, value in values.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (message_id,) = cursor.fetchone()
    return _inserted(message_id, conversation, values)


def _message_values(
    role: str,
    text: str,
    client_id: str | None,
    token_count: int,
    metadata: dict[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new message's fields but its conversation and seq, by field name."""
    return {
        "role": role,
        "text": text,
        "client_id": client_id,
        "token_count": token_count,
        "metadata": metadata,
        "created_at": now or timezone.now(),
    }


def _inserted(
    message_id: int, conversation: Conversation, values: dict[str, Any]
) -> Message:
    """The Message just inserted with `values`; sends post_save as `create` does."""
    message = Message(id=message_id, **{**values, "conversation": conversation})
    message._state.adding = False
    message._state.db = connection.alias
    post_save.send(
        sender=Message,
        instance=message,
        created=True,
        update_fields=None,
        raw=False,
        using=connection.alias,
    )
    return message


# --- a whole append in one statement (PostgreSQL) -----------------------------

APPEND_AT_ONCE_VENDORS = ("postgresql",)
_MESSAGE_VALUES = (
    "role",
    "text",
    "client_id",
    "token_count",
    "metadata",
    "created_at",
)


def append_at_once(
    *,
    conversation_id: Any = None,
    latest_of_visitor: Any = None,
    open_only: bool = False,
    role: str,
    text: str,
    client_id: str | None,
    token_count: int,
    metadata: dict[str, Any],
) -> tuple[Conversation, Message] | None:
    """Append a message in one statement: the conversation's row is updated
    (which locks it, as `lock_conversation_row` would), its next seq taken,
    the message inserted, and both read back, in one round trip that commits
    on its own.

    The conversation is `conversation_id`, or the newest of the visitor
    `latest_of_visitor`; with `open_only`, one that is closed is left alone.
    None when no such conversation was found (or the database cannot do
    this): the caller then goes the general way, in a transaction. Only for
    callers outside a transaction; sends post_save for the message.
    """
    if connection.vendor not in APPEND_AT_ONCE_VENDORS or connection.in_atomic_block:
        return None
    now = timezone.now()
    by_visitor = latest_of_visitor is not None
    try:
        target = (
            _prep(Conversation, "visitor", latest_of_visitor)
            if by_visitor
            else _prep(Conversation, "id", conversation_id)
        )
    except (ValueError, ValidationError):
        return None  # no such conversation; the general way says so
    values = _message_values(role, text, client_id, token_count, metadata, now)
    params = [token_count, _prep(Conversation, "updated_at", now), target]
    if open_only:
        params.append(Conversation.Status.CLOSED.value)
    params += [_prep(Message, name, values[name]) for name in _MESSAGE_VALUES]
    with connection.cursor() as cursor:
        cursor.execute(_append_sql(connection.vendor, by_visitor, open_only), params)
        row = cursor.fetchone()
    if row is None:
        return None
    conversation: Conversation = _instance(Conversation, row[:-1])
    values |= {"seq": conversation.last_seq}
    return conversation, _inserted(row[-1], conversation, values)


@functools.cache
def _append_sql(vendor: str, by_visitor: bool, open_only: bool) -> str:
    table = _quote(Conversation._meta.db_table)
    conversation_id = _column(Conversation, "id")
    last_seq = _column(Conversation, "last_seq")
    tokens = _column(Conversation, "memory_tokens")
    if by_visitor:
        target = (
            f"(SELECT {conversation_id} FROM {table}"
            f" WHERE {_column(Conversation, 'visitor')} = %s"
            f" ORDER BY {_column(Conversation, 'created_at')} DESC LIMIT 1)"
        )
    else:
        target = "%s"
    where = f"{conversation_id} = {target}"
    if open_only:
        where += f" AND {_column(Conversation, 'status')} <> %s"
    columns, _ = _readers(Conversation, vendor)
    fields = Conversation._meta.concrete_fields
    read_back = ", ".join(f"c.{_quote(f.column)}" for f in fields)
    # Typed, since a parameter in a SELECT list has no type of its own.
    typed = ", ".join(
        f"CAST(%s AS {_field(Message, name).db_type(connection)})"
        for name in _MESSAGE_VALUES
    )
    inserted = ", ".join(
        _column(Message, name) for name in ("conversation", "seq", *_MESSAGE_VALUES)
    )
    return (
        f"WITH c AS (UPDATE {table} SET {last_seq} = {last_seq} + 1,"
        f" {tokens} = {tokens} + %s, {_column(Conversation, 'updated_at')} = %s"
        f" WHERE {where} RETURNING {columns}),"
        f" m AS (INSERT INTO {_quote(Message._meta.db_table)} ({inserted})"
        f" SELECT c.{conversation_id}, c.{last_seq}, {typed} FROM c"
        f" RETURNING {_column(Message, 'id')})"
        f" SELECT {read_back}, m.{_column(Message, 'id')} FROM c, m"
    )


def save_counters(conversation: Conversation) -> None:
    """Write `last_seq` and `memory_tokens` (and `updated_at`, as auto_now)."""
    conversation.updated_at = timezone.now()
    params = [
        conversation.last_seq,
        conversation.memory_tokens,
        _prep(Conversation, "updated_at", conversation.updated_at),
        _prep(Conversation, "id", conversation.pk),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_save_counters_sql(connection.vendor), params)


@functools.cache
def _save_counters_sql(vendor: str) -> str:
    table = _quote(Conversation._meta.db_table)
    assignments = ", ".join(
        f"{_column(Conversation, name)} = %s"
        for name in ("last_seq", "memory_tokens", "updated_at")
    )
    return f"UPDATE {table} SET {assignments} WHERE {_column(Conversation, 'id')} = %s"


def reply_state(conversation_id: Any) -> tuple[str, str, int] | None:
    """The conversation's status, summary and summary_until_seq."""
    with connection.cursor() as cursor:
        cursor.execute(
            _reply_state_sql(connection.vendor),
            [_prep(Conversation, "id", conversation_id)],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1], row[2])


@functools.cache
def _reply_state_sql(vendor: str) -> str:
    columns = ", ".join(
        _column(Conversation, name)
        for name in ("status", "summary", "summary_until_seq")
    )
    table = _quote(Conversation._meta.db_table)
    return f"SELECT {columns} FROM {table} WHERE {_column(Conversation, 'id')} = %s"


def newest_turns(
    conversation_id: Any, after_seq: int, limit: int
) -> list[tuple[int, str, str, int]]:
    """(seq, role, text, token_count) of the newest messages after `after_seq`,
    newest first."""
    params = [_prep(Conversation, "id", conversation_id), after_seq, limit]
    with connection.cursor() as cursor:
        cursor.execute(_newest_turns_sql(connection.vendor), params)
        return [(r[0], r[1], r[2], r[3]) for r in cursor.fetchall()]


@functools.cache
def _newest_turns_sql(vendor: str) -> str:
    columns = ", ".join(
        _column(Message, name) for name in ("seq", "role", "text", "token_count")
    )
    seq = _column(Message, "seq")
    return (
        f"SELECT {columns} FROM {_quote(Message._meta.db_table)}"
        f" WHERE {_column(Message, 'conversation')} = %s AND {seq} > %s"
        f" ORDER BY {seq} DESC LIMIT %s"
    )
