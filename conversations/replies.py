"""The bot's answer to one customer message, from retrieval to the stored reply.

Runs as an asyncio task in the web process that received the message, so the
answer can stream to the sockets of the conversation. The task is not tied to
the socket: a customer who reloads mid-answer finds the stored answer on
return.
"""

import asyncio
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from escalation.models import Escalation
from knowledge import index as knowledge_index
from support_bot import live, metrics
from support_bot.bot.config import BotConfig, aget_bot_config, get_bot_config
from support_bot.bot.decision import (
    Guidelines,
    Outcome,
    Question,
    articles_for,
    decide,
)
from support_bot.bot.engine import (
    BotRequest,
    Completed,
    EngineError,
    Turn,
)
from support_bot.bot.engines import get_engine
from support_bot.bot.memory import MAX_RECENT_MESSAGES, StoredTurn, select_recent
from support_bot.bot.retrieval import ArticleDoc, ArticleIndex
from support_bot.bot.signals import measure_before
from support_bot.db import db_async
from support_bot.privacy import redact_answer, redact_request

from . import actions
from . import rows as conversation_rows
from .models import Conversation, Message, Visitor

logger = logging.getLogger(__name__)

# Up to this many indexed vectors (about a thousand articles) a search takes
# well under a millisecond, and runs on the event loop.
INLINE_SEARCH_VECTORS = 10_000

APOLOGY = (
    "I'm sorry, I couldn't finish my answer just now. I've asked a person from "
    "our support team to take over; they'll reply here."
)


class Listener(Protocol):
    """The socket that asked: it gets the answer directly, in order.

    Other sockets of the conversation get the same frames through the channel
    layer; the direct path keeps the asking socket's stream in order and does
    not depend on the layer.
    """

    # The socket's name on the channel layer.
    channel_name: str

    async def reply_typing(self, frame: dict[str, Any]) -> None: ...

    async def reply_delta(self, frame: dict[str, Any]) -> None: ...

    async def reply_stored(self, message: Message) -> None: ...


@dataclass(frozen=True)
class ReplyContext:
    conversation_id: Any
    question: str
    question_seq: int
    previous_question: str | None
    history: list[Turn]
    summary: str
    knowledge: "Knowledge"


@dataclass(frozen=True)
class Knowledge:
    """What the bot answers from: the article index and the guidelines."""

    index: ArticleIndex
    docs: dict[int, ArticleDoc]
    guidelines: Guidelines


def load_knowledge() -> Knowledge:
    """The current index (rebuilt here when articles changed) and guidelines."""
    article_index, docs = knowledge_index.get_index(knowledge_index.current_version())
    return Knowledge(article_index, docs, _load_guidelines())


def load_reply_context(
    conversation_id: Any,
    question_seq: int | None,
    *,
    draft: bool = False,
    state: tuple[str, str, int] | None = None,
) -> ReplyContext | None:
    """What the bot needs to answer, or None when it must not answer.

    One call on the database pool reads it all: each call is a hand-over
    between threads, which costs more than the queries it carries. The bot
    stays silent when a person owns the conversation or is awaited, and
    when the customer has written again since: the newer message is answered
    instead, with this one in its memory.

    `state` is the conversation's (status, summary, summary_until_seq) when
    the caller has just read them with the row locked; otherwise they are
    read here.
    """
    if state is None:
        state = conversation_rows.reply_state(conversation_id)
    if state is None:
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    status, summary, summary_until_seq = state
    if status != Conversation.Status.BOT and not draft:
        return None

    rows = [
        StoredTurn.from_row(row)
        for row in conversation_rows.newest_turns(
            conversation_id, summary_until_seq, MAX_RECENT_MESSAGES
        )
    ]
    if question_seq is None:
        # A draft for an agent answers the customer's latest message.
        question_seq = next((t.seq for t in rows if t.role == "customer"), 0)
    question = next((t for t in rows if t.seq == question_seq), None)
    newer_customer = any(t.seq > question_seq and t.role == "customer" for t in rows)
    if question is None or newer_customer:
        return None

    earlier = [t for t in rows if t.seq != question_seq]
    previous_question = next((t.text for t in earlier if t.role == "customer"), None)
    return ReplyContext(
        conversation_id=conversation_id,
        question=question.text,
        question_seq=question_seq,
        previous_question=previous_question,
        history=select_recent(earlier, get_bot_config().memory_token_budget),
        summary=summary,
        knowledge=load_knowledge(),
    )


# One answer at a time per conversation in this process, so a quick second
# question is answered after the first, with the first answer in its memory.
_conversation_locks: "weakref.WeakValueDictionary[Any, asyncio.Lock]" = (
    weakref.WeakValueDictionary()
)
_running: set["asyncio.Task[Message | None]"] = set()


def answering_here(conversation_id: Any) -> bool:
    """Whether this process is writing (or about to write) an answer in the
    conversation."""
    lock = _conversation_locks.get(str(conversation_id))
    return lock is not None and lock.locked()


def post_question(
    visitor: Visitor, client_id: str, text: str
) -> tuple[actions.PostedMessage, ReplyContext | None]:
    """Store a customer message and read what answering it needs, in one call.

    The context is read right after the message is stored, on the same
    database thread: a separate call would be one more hand-over between
    threads per answer. It is None for a message stored before (a resend),
    and when the bot must not answer (see `load_reply_context`).
    """
    posted = actions.post_customer_message_once(visitor, client_id, text)
    if not posted.created:
        return posted, None
    conversation = posted.conversation
    # Read with the row locked, which every change of status holds: they are
    # as they were when the message was committed.
    state = (conversation.status, conversation.summary, conversation.summary_until_seq)
    return posted, load_reply_context(conversation.id, posted.message.seq, state=state)


def start_reply(
    conversation_id: Any,
    question_seq: int,
    listener: Listener | None,
    ctx: ReplyContext | None = None,
    *,
    only_if_sure: bool = False,
) -> None:
    """Answer in the background, streaming to `listener` and the conversation.

    `ctx`, read when the question was stored, is used when no other answer
    of the conversation is being written; otherwise it is read again once
    that answer is stored, so that it is in the bot's memory.

    With `only_if_sure`, the bot answers only when it would answer outright:
    nothing is streamed, and an answer it would hand over, withdraw, hold or
    fail to write is not stored, so the conversation stays with the bot.
    """
    task = asyncio.create_task(
        answer(conversation_id, question_seq, listener, ctx, only_if_sure=only_if_sure)
    )
    _running.add(task)
    task.add_done_callback(_running.discard)


async def answer(
    conversation_id: Any,
    question_seq: int,
    listener: Listener | None = None,
    ctx: ReplyContext | None = None,
    *,
    only_if_sure: bool = False,
) -> Message | None:
    # The answer's stream id: its typing notice, pieces and stored message
    # carry it, the apology for a failure included.
    stream_id = secrets.token_hex(6)
    lock = _conversation_locks.setdefault(str(conversation_id), asyncio.Lock())
    if lock.locked():
        ctx = None
    # An uncontended lock is taken without yielding to the loop, so nothing
    # can be stored for this conversation between the check and here.
    async with lock:
        try:
            reply = await _answer(
                conversation_id, question_seq, listener, ctx, stream_id, only_if_sure
            )
        except Exception as error:
            if _conversation_gone(error):
                # Deleted meanwhile (the visitor was erased): nothing to say,
                # and nothing failed.
                logger.info(
                    "The conversation was deleted while it was being answered",
                    extra={"conversation_id": str(conversation_id)},
                )
                return None
            if only_if_sure:
                logger.exception(
                    "Answering failed; nothing is said",
                    extra={"conversation_id": str(conversation_id)},
                )
                return None
            metrics.llm_error("internal")
            metrics.bot_answer_finished("interrupted")
            logger.exception(
                "Answering failed",
                extra={"conversation_id": str(conversation_id)},
            )
            reply = await db_async(actions.store_bot_reply)(
                conversation_id,
                APOLOGY,
                {
                    "reply_to": question_seq,
                    "stream": stream_id,
                    "interrupted": True,
                    "error": "internal",
                },
                escalate_reason=Escalation.Reason.LLM_ERROR,
                escalate_detail="internal error",
            )
    if reply is not None and listener is not None:
        await _notify(listener.reply_stored(reply))
    return reply


def _conversation_gone(error: Exception) -> bool:
    return isinstance(error, Conversation.DoesNotExist) or (
        isinstance(error, actions.ActionError) and error.code == "not_found"
    )


async def _notify(call: Awaitable[None]) -> bool:
    """Send to the asking socket; False when it can no longer be reached."""
    try:
        await call
    except Exception:
        logger.info("The asking socket went away during an answer")
        return False
    return True


async def _answer(
    conversation_id: Any,
    question_seq: int,
    listener: Listener | None,
    ctx: ReplyContext | None,
    stream_id: str,
    only_if_sure: bool = False,
) -> Message | None:
    if ctx is None:
        ctx = await db_async(load_reply_context)(conversation_id, question_seq)
    if ctx is None:
        return None

    started = time.monotonic()
    group = live.conversation_group(conversation_id)
    bot = await aget_bot_config()
    # The stored answer ends the typing notice: the widget stops showing the
    # bot typing when the message of the same stream arrives, so no "stopped
    # typing" is sent. With `only_if_sure` nothing shows until it is known
    # that the bot answers.
    typing = None if only_if_sure else _typing_frame(bot.name, stream_id, question_seq)
    live_text = _LiveText(group, stream_id, question_seq, listener, typing=typing)
    try:
        await live_text.start()
        return await _write(ctx, bot, live_text, started, only_if_sure)
    finally:
        # Until the answer is stored, even when storing is slow, the other
        # sockets are told the bot is writing.
        live_text.close()


async def _write(
    ctx: ReplyContext,
    bot: BotConfig,
    live_text: "_LiveText",
    started: float,
    only_if_sure: bool,
) -> Message | None:
    """Ask the model, streaming through `live_text`, and store what it decided."""
    conversation_id, stream_id = ctx.conversation_id, live_text.stream_id
    try:
        question = await _question(
            ctx.question, ctx.previous_question, ctx, ctx.knowledge, bot.name
        )
        outcome = await decide(
            question,
            get_engine(bot),
            threshold=bot.confidence_threshold,
            min_score=settings.RETRIEVAL_MIN_SCORE,
            guidelines=ctx.knowledge.guidelines,
            allowed_hosts=settings.LINK_ALLOWED_HOSTS,
            on_delta=None if only_if_sure else live_text.add,
            review=bot.review_mode,
        )
    except EngineError as error:
        metrics.llm_error(error.kind)
        if only_if_sure:
            logger.warning(
                "LLM answer failed: %s; nothing is said",
                error.kind,
                extra={"conversation_id": str(conversation_id)},
            )
            return None
        metrics.bot_answer_finished("interrupted")
        # The asking socket has every piece before the apology that ends them.
        await live_text.finish()
        return await _store_failure(ctx, stream_id, error, live_text.text, started)
    finally:
        await live_text.finish()
    first_delta_at = live_text.first_at

    now = time.monotonic()
    timing = {
        "latency_ms": round((now - started) * 1000),
        "first_delta_ms": round(((first_delta_at or now) - started) * 1000),
    }
    if outcome.completed is not None:
        metrics.llm_answer_timed(
            now - started, first_delta_at - started if first_delta_at else None
        )
    # In copilot mode every answer is a draft: a sure one is held for a person
    # as always; an unsure one (supervised mode's holds) is not said at all.
    sure = outcome.decision == "answer" or (
        outcome.decision == "hold" and outcome.confidence >= bot.confidence_threshold
    )
    if only_if_sure and not sure:
        logger.info(
            "Not answering: the bot would %s (%s)",
            outcome.decision,
            "; ".join(outcome.reasons),
            extra={"conversation_id": str(conversation_id)},
        )
        return None
    metrics.first_response("bot", (first_delta_at or now) - started)
    return await _store_outcome(ctx, stream_id, outcome, timing)


class _LiveText:
    """The answer as the model writes it, to the sockets of the conversation.

    The asking socket gets the typing notice and the text directly: the
    first piece at once, then what the model sends while the previous piece
    is being written to the socket as one frame, so an idle server sends each
    piece as it comes and a busy one sends fewer, larger frames instead of
    falling behind.

    The conversation's other sockets (another tab) get it through the channel
    layer: the typing notice once the answer has taken LAYER_INTERVAL seconds
    and is not yet stored, then the text at most every LAYER_INTERVAL
    seconds. An answer stored sooner publishes neither: the stored message
    reaches those sockets as quickly as a preview would, and each publish
    costs a round trip to Redis and a delivery to every socket of the
    conversation.

    Nothing is published while no other socket listens (live.others_listening).
    The two paths are separate tasks, so a slow or stalled Redis never holds
    up the asking socket, nor the storing of the answer. What the layer
    carries can then arrive after the stored answer; the sockets drop a
    notice or a piece of a stream whose message they have.
    """

    LAYER_INTERVAL = 0.1

    def __init__(
        self,
        group: str,
        stream_id: str,
        reply_to: int,
        listener: Listener | None,
        *,
        typing: dict[str, Any] | None = None,
    ) -> None:
        self.group = group
        self.stream_id = stream_id
        self.reply_to = reply_to
        self.listener = listener
        self.typing = typing
        self.first_at: float | None = None
        self._written: list[str] = []
        self._direct = _Pending()
        self._direct_sender: asyncio.Task[None] | None = None
        self._layer = _Pending()
        self._layer_sender: asyncio.Task[None] | None = None
        self._started_at = self._published_at = time.monotonic()
        self._typing_published = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._asker = listener.channel_name if listener is not None else None
        # A socket joined the conversation: it gets the notice and all the
        # text so far at the next publish.
        self._from_the_start = False
        live.watch_joins(group, self._someone_joined)

    @property
    def text(self) -> str:
        return "".join(self._written)

    async def start(self) -> None:
        """Show the asking socket that the bot is writing, and the others too
        if the answer takes a while."""
        if self.typing is None:
            return
        if self.listener is not None:
            await self._to_listener(self.listener.reply_typing(self.typing))
        self._timer = asyncio.get_running_loop().call_later(
            self.LAYER_INTERVAL, self._layer_due
        )

    async def add(self, text: str) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self._written.append(text)
        self._layer.add(text)
        if now - self._published_at >= self.LAYER_INTERVAL:
            self._layer_due()
        if self.listener is None:
            return
        self._direct.add(text)
        if self._direct_sender is not None:
            return
        if self._direct.frames == 0:
            # The first piece goes out at once, not after the model's next
            # pieces: those are often in the buffer already, and the customer
            # waits for the first words, not for the rest.
            await self._send_direct()
        if self._direct.parts and self._direct_sender is None:
            self._direct_sender = asyncio.create_task(self._send_direct_all())

    async def finish(self) -> None:
        """Wait until the text on its way to the asking socket is sent."""
        if self._direct_sender is not None:
            await self._direct_sender

    def close(self) -> None:
        """The answer is stored: nothing more is published."""
        self._closed = True
        live.unwatch_joins(self.group, self._someone_joined)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _someone_joined(self) -> None:
        if self._closed:
            return
        if self._typing_published or self._layer.frames:
            # Published before the socket joined: all of it again.
            self._from_the_start = True
            self._layer_due()
        elif time.monotonic() - self._started_at >= self.LAYER_INTERVAL:
            # Held back for want of listeners: all of it now.
            self._layer_due()
        # Otherwise the first publish, due LAYER_INTERVAL after the start,
        # carries everything anyway (and a quick answer publishes nothing).

    def _layer_due(self) -> None:
        # The model is slow to start or to go on, or storing is slow: the
        # other sockets hear that the bot is writing, and what it has
        # written so far.
        if self._timer is not None:
            self._timer.cancel()  # due sooner, by the model's text
            self._timer = None
        self._published_at = time.monotonic()
        self._layer.due = True
        if self._layer_sender is None and not self._closed:
            # Nothing waits for it; live.flush does, before a loop ends.
            self._layer_sender = live.send_in_background(self._publish_all())

    async def _publish_all(self) -> None:
        try:
            while self._layer.due and not self._closed:
                self._layer.due = False
                if not live.others_listening(self.group, self._asker):
                    # Nobody to tell (one tab, no agent): what was written
                    # waits for a later turn, should another socket join.
                    continue
                if self._from_the_start:
                    # Index 0 again: a socket that had the start replaces
                    # its preview with the same text, a new one starts it.
                    self._from_the_start = False
                    self._typing_published = False
                    self._layer.parts = list(self._written)
                    self._layer.frames = 0
                if self.typing is not None and not self._typing_published:
                    self._typing_published = True
                    event = {"type": "conversation.typing", "frame": self.typing}
                    await live.asend(self.group, event)
                if self._layer.parts and not self._closed:
                    frame = self._layer.take(self.stream_id, self.reply_to)
                    event = {"type": "conversation.delta", "frame": frame}
                    await live.asend(self.group, event)
        finally:
            self._layer_sender = None

    async def _send_direct_all(self) -> None:
        try:
            while self._direct.parts:
                await self._send_direct()
        finally:
            self._direct_sender = None

    async def _send_direct(self) -> None:
        frame = self._direct.take(self.stream_id, self.reply_to)
        if self.listener is not None:
            await self._to_listener(self.listener.reply_delta(frame))

    async def _to_listener(self, call: Awaitable[None]) -> None:
        if not await _notify(call):
            # The asking socket went away (a reload): the answer goes on for
            # the conversation and is stored.
            self.listener = None


class _Pending:
    """Text not yet sent on one path, and the index of that path's next frame."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.frames = 0
        self.due = False

    def add(self, text: str) -> None:
        self.parts.append(text)

    def take(self, stream_id: str, reply_to: int) -> dict[str, Any]:
        frame = {
            "type": "bot.delta",
            "stream": stream_id,
            "reply_to": reply_to,
            "index": self.frames,
            "text": "".join(self.parts),
        }
        self.parts.clear()
        self.frames += 1
        return frame


async def _question(
    text: str,
    previous: str | None,
    ctx: ReplyContext | None,
    knowledge: Knowledge,
    bot_name: str,
) -> Question:
    """The question with its retrieval and the signals known before the model.

    Over a small index this runs on the event loop: a hand-over to a thread
    costs more than the search. A large index is searched on a thread, so
    that other sockets are not held up meanwhile.
    """
    request = BotRequest(
        question=text,
        history=ctx.history if ctx else [],
        summary=ctx.summary if ctx else "",
        bot_name=bot_name,
    )
    if knowledge.index.vector_count <= INLINE_SEARCH_VECTORS:
        return _ask(text, previous, request, knowledge)
    return await asyncio.to_thread(_ask, text, previous, request, knowledge)


def _ask(
    text: str, previous: str | None, request: BotRequest, knowledge: Knowledge
) -> Question:
    hits = knowledge.index.search(text, settings.RETRIEVAL_TOP_K, previous)
    always_human = knowledge.guidelines.always_human
    signals = measure_before(text, previous, hits, always_human)
    return Question(
        text, previous, redact_request(request), hits, knowledge.docs, signals
    )


def _load_guidelines() -> Guidelines:
    """The published guidelines, sorted by kind for the decision."""
    from knowledge.guidelines import published_guidelines

    found = published_guidelines()
    return Guidelines(
        prompt=tuple(g.text for g in found if g.kind in ("tone", "policy")),
        always_human=tuple(g.text for g in found if g.kind == "always_human"),
        never_do=tuple(g.text for g in found if g.kind == "never_do"),
    )


def _outcome_metadata(outcome: Outcome) -> dict[str, Any]:
    completed = outcome.completed
    titles = {a.id: a.title for a in outcome.articles}
    answered = outcome.decision in ("answer", "hold")
    sources = completed.sources if completed and answered else []
    metadata: dict[str, Any] = {
        "decision": outcome.decision,
        "reasons": outcome.reasons,
        "confidence": round(outcome.confidence, 4),
        "signals": outcome.signals.as_dict(),
        "sources": [{"id": i, "title": titles[i]} for i in sources if i in titles],
        "retrieval": [
            {"id": h.article_id, "title": h.title, "score": round(h.score, 4)}
            for h in outcome.hits
        ],
    }
    if completed is not None:
        metadata |= {
            "model": completed.model,
            "prompt_tokens": completed.prompt_tokens,
            "completion_tokens": completed.completion_tokens,
            "finish_reason": completed.finish_reason,
        }
    if outcome.withdrawn_text is not None:
        metadata |= {"withdrawn": True, "withdrawn_text": outcome.withdrawn_text}
    return metadata


async def _store_outcome(
    ctx: ReplyContext, stream_id: str, outcome: Outcome, timing: dict[str, int]
) -> Message:
    metadata = {
        "reply_to": ctx.question_seq,
        "stream": stream_id,
        **_outcome_metadata(outcome),
        **timing,
    }
    completed = outcome.completed
    if completed is not None:
        metrics.llm_usage(
            completed.model, completed.prompt_tokens, completed.completion_tokens
        )
    metrics.bot_answer_finished(_OUTCOMES[outcome.decision])
    if outcome.decision == "hold":
        from escalation.actions import hold_answer

        draft = outcome.completed.text if outcome.completed else ""
        return await db_async(hold_answer)(
            ctx.conversation_id, ctx.question_seq, draft, metadata, outcome.text
        )
    logger.info(
        "Bot decided to %s (%s)",
        outcome.decision,
        "; ".join(outcome.reasons),
        extra={
            "conversation_id": str(ctx.conversation_id),
            "decision": outcome.decision,
        },
    )
    return await db_async(actions.store_bot_reply)(
        ctx.conversation_id,
        outcome.text,
        metadata,
        escalate_reason=outcome.escalate,
        escalate_detail="; ".join(outcome.reasons),
    )


_OUTCOMES: dict[str, Any] = {
    "answer": "answered",
    "escalate": "escalated",
    "withdraw": "withdrawn",
    "hold": "escalated",
}


@dataclass(frozen=True)
class Preview:
    answer: str
    decision: str
    reasons: list[str]
    confidence: float
    signals: dict[str, Any]
    articles: list[dict[str, Any]]


async def preview_answer(question: str, previous: str | None = None) -> Preview:
    """What the bot would say and decide, storing nothing (admin's "Try the bot")."""
    bot = await aget_bot_config()
    knowledge = await db_async(load_knowledge)()
    asked = await _question(question, previous, None, knowledge, bot.name)
    try:
        outcome = await decide(
            asked,
            get_engine(bot),
            threshold=bot.confidence_threshold,
            min_score=settings.RETRIEVAL_MIN_SCORE,
            guidelines=knowledge.guidelines,
            allowed_hosts=settings.LINK_ALLOWED_HOSTS,
        )
    except EngineError as error:
        return Preview(
            APOLOGY, "escalate", [f"the model failed: {error.kind}"], 0.0, {}, []
        )
    metadata = _outcome_metadata(outcome)
    return Preview(
        answer=outcome.text,
        decision=outcome.decision,
        reasons=outcome.reasons,
        confidence=outcome.confidence,
        signals=metadata["signals"],
        articles=metadata["retrieval"],
    )


async def _store_failure(
    ctx: ReplyContext, stream_id: str, error: EngineError, partial: str, started: float
) -> Message:
    # The partial text is kept for the agent who takes over, never shown as an
    # answer: the customer sees one message, the apology.
    logger.warning(
        "LLM answer failed: %s",
        error.kind,
        extra={"conversation_id": str(ctx.conversation_id), "kind": error.kind},
    )
    metadata = {
        "reply_to": ctx.question_seq,
        "stream": stream_id,
        "interrupted": True,
        "error": error.kind,
        "partial_text": partial,
        "latency_ms": round((time.monotonic() - started) * 1000),
    }
    return await db_async(actions.store_bot_reply)(
        ctx.conversation_id,
        APOLOGY,
        metadata,
        escalate_reason=Escalation.Reason.LLM_ERROR,
        escalate_detail=error.kind,
    )


def _typing_frame(bot_name: str, stream_id: str, reply_to: int) -> dict[str, Any]:
    return {
        "type": "typing",
        "role": "bot",
        "name": bot_name,
        "active": True,
        "stream": stream_id,
        "reply_to": reply_to,
    }


async def drain() -> None:
    """Wait for the answers this process is still writing (shutdown, tests)."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)


async def draft_reply(conversation_id: Any) -> tuple[str, list[dict[str, Any]]]:
    """The bot's answer to the customer's latest message, for an agent to edit.

    Nothing is stored or sent to the customer. The decision's hand-over rules
    are skipped: the agent asked for a draft, so the model always writes one.
    An id that names no conversation is refused as `not_found`.
    """
    try:
        ctx = await db_async(load_reply_context)(conversation_id, None, draft=True)
    except Conversation.DoesNotExist:
        raise actions.ActionError(
            "not_found", "There is no such conversation."
        ) from None
    if ctx is None:
        return "", []
    bot = await aget_bot_config()
    asked = await _question(
        ctx.question, ctx.previous_question, ctx, ctx.knowledge, bot.name
    )
    # The articles a live answer would use, so that the draft is the answer
    # the bot would have given.
    articles = articles_for(
        asked,
        threshold=bot.confidence_threshold,
        min_score=settings.RETRIEVAL_MIN_SCORE,
    )
    request = redact_request(
        BotRequest(
            question=ctx.question,
            history=ctx.history,
            summary=ctx.summary,
            articles=articles,
            bot_name=bot.name,
        )
    )
    text = ""
    sources: list[int] = []
    declined = False
    try:
        async for event in get_engine().stream(request):
            if isinstance(event, Completed):
                text, sources = event.text, event.sources
                declined = (event.needs_person and not sources) or not any(
                    char.isalnum() for char in text
                )
    except EngineError as error:
        metrics.llm_error(error.kind)
        raise actions.ActionError(
            "model_unavailable",
            "The model could not write a suggestion just now "
            f"({error.kind}). Try again, or write the reply yourself.",
        ) from None
    if declined:
        # The engine's words to a customer it cannot help ("I've asked a
        # person to take over") are no draft for that person.
        raise actions.ActionError(
            "no_suggestion",
            "The bot has no answer to suggest for the customer's last message; "
            "write the reply yourself.",
        )
    text = redact_answer(text, " ".join(a.body for a in articles))
    titles = {a.id: a.title for a in articles}
    return text, [{"id": i, "title": titles[i]} for i in sources if i in titles]
