"""The widget's websocket: one socket per open widget (docs/protocol.md).

The consumer parses frames and calls actions; it owns one piece of state of its
own, `sent_seq`, the highest message seq this socket has delivered. Messages
reach the socket through the channel layer, directly from the reply task, and
through replay; `_deliver` sends each seq once and fills any gap from the
database, so a live event lost on the way costs nothing.
"""

import asyncio
import logging
import math
import time
from collections import deque
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from oversight.actions import rate_conversation
from support_bot import live, metrics
from support_bot.bot.config import aget_bot_config
from support_bot.consumers import LAYER_DOWN, LAYER_DOWN_CLOSE_CODE, PooledConsumer
from support_bot.db import db_async

from . import actions, recovery, replies
from .models import Conversation, Message, Visitor
from .protocol import (
    CLIENT_ID,
    FrameError,
    RateLimiter,
    decode,
    limiter_for,
    parse_after_seq,
    parse_feedback,
    parse_message,
    parse_rate,
    parse_token,
    parse_typing,
)

logger = logging.getLogger(__name__)

REPLAY_PAGE = 200
# A socket that has not said hello by then is closed: it holds memory and a
# file descriptor for nobody.
HELLO_TIMEOUT = 30.0
NO_HELLO_CLOSE_CODE = 4408
# The visitor was erased (a data request): the widget forgets its token and
# what it had not sent, and starts again as a new visitor.
VISITOR_ERASED_CLOSE_CODE = 4410
# Seconds added to a wait that must not end early.
TIMER_SLACK = 0.05
# A customer still typing is told to the other side again after this long
# (the widget sends "typing" once, then "stopped"); repeats in between are
# dropped.
TYPING_REPEAT_SECONDS = 3.0
# Typing changes passed on: a burst, then this many a second.
TYPING_BURST = 6
TYPING_CHANGES_PER_SECOND = 2.0
# A widget resumes once per socket; each resume reads the conversation from
# the database, so a client repeating it is slowed down, not served.
RESUME_BURST = 3
RESUMES_PER_SECOND = 0.2
# How often a waiting customer's place in the queue is looked at again.
QUEUE_REFRESH_SECONDS = 20.0


def messages_after(conversation_id: Any, after_seq: int, limit: int) -> list[Message]:
    return list(
        Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq)
        .select_related("feedback")
        .order_by("seq")[:limit]
    )


def latest_conversation_id(visitor_id: Any) -> Any:
    return (
        Conversation.objects.filter(visitor_id=visitor_id)
        .order_by("-created_at")
        .values_list("id", flat=True)
        .first()
    )


def conversation_status(
    conversation_id: Any,
) -> tuple[str, int, dict[str, str] | None]:
    conversation = Conversation.objects.select_related("agent").get(pk=conversation_id)
    agent = conversation.agent
    name = (agent.first_name or agent.get_username()) if agent else None
    return conversation.status, conversation.last_seq, {"name": name} if name else None


def resume_status(
    conversation_id: Any,
) -> tuple[str, int, dict[str, str] | None, recovery.Pending | None]:
    """`conversation_status`, and the question the bot still owes, if any."""
    status, last_seq, agent = conversation_status(conversation_id)
    pending = None
    if status == Conversation.Status.BOT:
        pending = recovery.pending_question(conversation_id)
    return status, last_seq, agent, pending


class WidgetConsumer(PooledConsumer):
    visitor: Visitor | None = None
    conversation_id: str | None = None
    # None until hello; then the conversation's last seq at that moment, so
    # the socket is live from there and `resume` replays what came before.
    sent_seq: int | None = None

    async def connect(self) -> None:
        self.deliver_lock = asyncio.Lock()
        self.last_status: dict[str, Any] | None = None
        self.typing_active = False
        self.typing_sent_at = -math.inf
        self.typing_limiter = RateLimiter(TYPING_BURST, TYPING_CHANGES_PER_SECOND)
        self.resume_limiter = RateLimiter(RESUME_BURST, RESUMES_PER_SECOND)
        self.last_queue: dict[str, Any] | None = None
        self.queue_timer: asyncio.TimerHandle | None = None
        self.background: set[asyncio.Future[None]] = set()
        self.groups_joined: list[str] = []
        # Streams this socket asked for; their layer copies are skipped. Bounded:
        # a stream's last layer copies can trail its stored answer.
        self.own_streams: deque[str] = deque(maxlen=16)
        self.settled_streams: deque[str] = deque(maxlen=actions.SETTLED_STREAMS)
        await self.accept()
        live.tell_when_resumed(self.channel_layer, self.channel_name)
        metrics.socket_opened("widget")
        self.hello_timer = asyncio.create_task(self._close_without_hello())
        self.stranded_timer: asyncio.Task[None] | None = None

    async def _close_without_hello(self) -> None:
        await asyncio.sleep(HELLO_TIMEOUT)
        if self.visitor is None and not self.closed:
            await self.close(code=NO_HELLO_CLOSE_CODE)

    async def disconnect(self, code: int) -> None:
        self.hello_timer.cancel()
        if self.stranded_timer is not None:
            self.stranded_timer.cancel()
        if self.queue_timer is not None:
            self.queue_timer.cancel()
        metrics.socket_closed("widget")
        live.forget(self.channel_layer, self.channel_name)
        await self.leave_groups(self.groups_joined)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        frame: dict[str, Any] = {}
        try:
            frame = decode(text_data)
            kind = frame["type"]
            if self.visitor is None and kind != "hello":
                raise FrameError("not_ready", "Send hello first.")
            await getattr(self, f"on_{kind}")(frame)
        except FrameError as error:
            await self.send_json(error.as_frame())
        except Exception:
            logger.exception("Widget frame failed")
            error_frame = {
                "type": "error",
                "code": "server_error",
                "message": "Something went wrong on our side. Please try again.",
            }
            # A message that failed (the database was unreachable, say) was
            # not stored: naming it lets the client send it again.
            client_id = frame.get("client_id")
            if (
                frame.get("type") == "message"
                and isinstance(client_id, str)
                and CLIENT_ID.fullmatch(client_id)
            ):
                error_frame["client_id"] = client_id
            await self.send_json(error_frame)

    # --- client frames ------------------------------------------------------

    async def on_hello(self, frame: dict[str, Any]) -> None:
        if self.visitor is not None:
            raise FrameError("invalid_frame", "hello was already sent.")
        self.hello_timer.cancel()
        session = await db_async(actions.open_visitor_session)(parse_token(frame))
        bot = await aget_bot_config()
        self.visitor = session.visitor
        await self._join(live.visitor_group(session.visitor.id))
        conversation = session.conversation
        # Live from here on; `resume` adds what came before.
        self.sent_seq = conversation.last_seq if conversation else 0
        # Answers stored before this socket went live: pieces of them still
        # on the layer are not shown.
        self.settled_streams.extend(session.settled_streams)
        if conversation is not None:
            await self._join_conversation(conversation.id)
        await self.send_json(
            {
                "type": "welcome",
                "token": session.token,
                "conversation": str(conversation.id) if conversation else None,
                "status": conversation.status if conversation else "bot",
                "last_seq": conversation.last_seq if conversation else 0,
                "bot": {"name": bot.name, "greeting": bot.greeting},
                "limits": {"max_message_chars": settings.MAX_MESSAGE_CHARS},
            }
        )

    async def on_resume(self, frame: dict[str, Any]) -> None:
        after_seq = parse_after_seq(frame)
        if wait := self.resume_limiter.take():
            raise FrameError(
                "rate_limited",
                "This connection asked to resume too often. Please wait a moment.",
                retry_after=math.ceil(wait),
            )
        status, last_seq = Conversation.Status.BOT.value, 0
        agent: dict[str, str] | None = None
        pending: recovery.Pending | None = None
        async with self.deliver_lock:
            if self.conversation_id is None and self.visitor is not None:
                # Another tab may have started the visitor's first conversation
                # after this socket's hello looked, its notice sent before this
                # socket was listening.
                started = await db_async(latest_conversation_id)(self.visitor.pk)
                if started is not None:
                    await self._join_conversation(started)
                    self.sent_seq = 0
            if self.conversation_id is not None:
                # What the client asked for, up to what this socket has sent;
                # later messages are sent live.
                await self._send_stored(after_seq, self.sent_seq or 0, replay=True)
                # And what was stored after hello read the conversation but
                # before the socket joined its group, so was not sent live.
                await self._send_stored_after(self.sent_seq or 0, replay=False)
                status, last_seq, agent, pending = await db_async(resume_status)(
                    self.conversation_id
                )
        await self.send_json({"type": "resumed", "last_seq": last_seq})
        await self.send_json(
            {
                "type": "status",
                "conversation": self.conversation_id,
                "status": status,
                "reason": None,
                "agent": agent,
            }
        )
        if status == Conversation.Status.WAITING:
            await self._send_queue_place()
        if pending is not None:
            self._watch_pending(pending)

    def _watch_pending(self, pending: recovery.Pending) -> None:
        """See that the bot's answer to `pending` comes, here or elsewhere.

        A socket resumes after a reconnect, which is what a widget does when
        the web process it was on stopped, perhaps mid-answer. If the answer
        is still being written somewhere it will arrive; if it is still
        missing once no answer can take longer, this socket answers again.
        """
        if self.stranded_timer is not None:
            self.stranded_timer.cancel()
        self.stranded_timer = asyncio.create_task(self._answer_if_stranded(pending))

    async def _answer_if_stranded(self, pending: recovery.Pending) -> None:
        at = pending.stranded_at
        again = timedelta(seconds=settings.STRANDED_ANSWER_SECONDS)
        while True:
            # The event loop's timers can fire a little early, and the
            # claim refuses before `at`.
            wait = (at - timezone.now()).total_seconds()
            await asyncio.sleep(max(wait, 0) + TIMER_SLACK)
            if self.closed:
                return
            if not replies.answering_here(pending.conversation_id) and await db_async(
                recovery.claim
            )(pending):
                replies.start_reply(pending.conversation_id, pending.seq, self)
                return
            # Answered meanwhile, being answered here, or taken up elsewhere:
            # look again when it could be stranded again.
            found = await db_async(recovery.pending_question)(pending.conversation_id)
            if found is None:
                return
            pending, at = found, max(found.stranded_at, timezone.now() + again)

    def _take_token(self, client_id: str | None = None) -> None:
        """Refuse, as rate_limited, a visitor writing faster than the limit.

        Every frame that stores something takes a token: messages, and also
        contact addresses, ratings and feedback, each of which is a write
        and may reach the agents' consoles.
        """
        assert self.visitor is not None
        limiter = limiter_for(
            self.visitor.id, settings.WIDGET_RATE_BURST, settings.WIDGET_RATE_PER_SECOND
        )
        wait = limiter.take()
        if wait:
            raise FrameError(
                "rate_limited",
                "You're sending messages faster than we can read them. "
                "Please wait a moment.",
                client_id=client_id,
                retry_after=math.ceil(wait),
            )

    async def on_message(self, frame: dict[str, Any]) -> None:
        incoming = parse_message(frame)
        self._take_token(incoming.client_id)
        assert self.visitor is not None
        posted, ctx = await db_async(replies.post_question)(
            self.visitor, incoming.client_id, incoming.text
        )
        message = posted.message
        ack = {
            "type": "ack",
            "client_id": incoming.client_id,
            "seq": message.seq,
            "conversation": str(posted.conversation.id),
            "duplicate": not posted.created,
        }
        if self.conversation_id != str(posted.conversation.id):
            try:
                await self._join_conversation(posted.conversation.id)
            except LAYER_DOWN:
                await self._stored_but_deaf(posted, ack, ctx)
                return
            if posted.conversation_created:
                self.sent_seq = 0

        await self.send_json(ack)
        await self._deliver(message.as_frame())
        # No context: the bot is not to answer (a person has the conversation).
        if posted.created and ctx is not None:
            replies.start_reply(posted.conversation.id, message.seq, self, ctx)

    async def _stored_but_deaf(
        self,
        posted: actions.PostedMessage,
        ack: dict[str, Any],
        ctx: replies.ReplyContext | None,
    ) -> None:
        """The message is stored, but this socket could not join its
        conversation (Redis is down): it would hear nothing of the other tabs
        or of the agents. It is answered all the same, and the socket is
        closed as one opened while Redis is down is, so that the widget comes
        back and resumes, replaying what it missed."""
        logger.warning(
            "A socket could not join its conversation; it is closed",
            extra={"conversation_id": str(posted.conversation.id)},
        )
        self.conversation_id = None
        await self.send_json(ack)
        if posted.created and ctx is not None:
            replies.start_reply(posted.conversation.id, posted.message.seq, None, ctx)
        await self.close(code=LAYER_DOWN_CLOSE_CODE)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        active = parse_typing(frame)
        if self.conversation_id is None:
            return
        # Only changes go out, and a repeated "typing" at most every few
        # seconds: each one is a publish to every socket of the conversation.
        now = time.monotonic()
        if active == self.typing_active and (
            not active or now - self.typing_sent_at < TYPING_REPEAT_SECONDS
        ):
            return
        # Changes too: a client flipping it back and forth is cut to a few a
        # second, silently (a console clears a line whose "stopped" is lost).
        if self.typing_limiter.take():
            return
        self.typing_active, self.typing_sent_at = active, now
        await live.asend(
            live.conversation_group(self.conversation_id),
            {
                "type": "conversation.typing",
                "conversation": self.conversation_id,
                "frame": {"type": "typing", "role": "customer", "active": active},
            },
        )

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        seq, rating = parse_feedback(frame)
        self._take_token()
        assert self.visitor is not None
        try:
            await db_async(actions.record_feedback)(self.visitor, seq, rating)
        except actions.ActionError as error:
            raise FrameError(error.code, error.message) from None
        await self.send_json({"type": "feedback.saved", "seq": seq, "rating": rating})

    async def on_rate(self, frame: dict[str, Any]) -> None:
        score, comment = parse_rate(frame)
        self._take_token()
        assert self.visitor is not None
        try:
            rating = await db_async(rate_conversation)(self.visitor, score, comment)
        except actions.ActionError as error:
            raise FrameError(error.code, error.message) from None
        await self.send_json(
            {
                "type": "rate.saved",
                "conversation": str(rating.conversation_id),
                "score": score,
                "comment": comment,
            }
        )

    async def on_request_human(self, frame: dict[str, Any]) -> None:
        assert self.visitor is not None
        conversation = await db_async(actions.request_human)(self.visitor)
        if self.conversation_id != str(conversation.id):
            await self._join_conversation(conversation.id)
            self.sent_seq = self.sent_seq or 0
        await self._send_status(conversation.status, "customer_request")
        async with self.deliver_lock:
            if self.sent_seq is not None:
                await self._send_stored_after(self.sent_seq, replay=False)
        await self._send_queue_place()

    async def on_contact(self, frame: dict[str, Any]) -> None:
        email = frame.get("email")
        if not isinstance(email, str):
            raise FrameError("invalid_frame", "contact needs an email address.")
        self._take_token()
        assert self.visitor is not None
        try:
            await db_async(actions.save_contact_email)(self.visitor, email.strip())
        except actions.ActionError as error:
            raise FrameError(error.code, error.message) from None
        await self.send_json({"type": "contact.saved", "email": email.strip()})

    # --- channel-layer events -----------------------------------------------

    async def conversation_message(self, event: dict[str, Any]) -> None:
        await self._deliver(event["frame"])

    async def conversation_delta(self, event: dict[str, Any]) -> None:
        # This socket's own answers arrive directly (reply_delta), in order; and
        # a delta can trail its stored answer on the layer, never show it then.
        frame = event["frame"]
        if (
            frame["stream"] not in self.own_streams
            and frame["stream"] not in self.settled_streams
        ):
            await self.send_json(frame)

    async def conversation_typing(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        if frame.get("role") == "customer":
            return
        # The asking socket got the bot's notice directly. And the notice can
        # trail its answer on the layer: the asking socket gets the answer
        # directly, and a socket that said hello just after the answer was
        # stored has it among the settled streams. The answer ended the notice.
        stream = frame.get("stream")
        if stream in self.own_streams or stream in self.settled_streams:
            return
        await self.send_json(frame)

    async def conversation_status(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        status = await self._send_status(frame["status"], frame.get("reason"))
        if status == Conversation.Status.WAITING:
            await self._send_queue_place()

    async def _send_status(self, changed_to: str, reason: str | None) -> str:
        """A `status` frame with the conversation's stored status.

        Status frames carry no seq, and changes made on two web processes can
        reach a socket in either order ("waiting" after "human"): each frame
        says what is stored when it is sent, so the last one is right. The
        reason is the change's, when the stored status is still that change.
        """
        status, _, agent = await db_async(conversation_status)(self.conversation_id)
        frame = {
            "type": "status",
            "conversation": self.conversation_id,
            "status": status,
            "reason": reason if status == changed_to else None,
            "agent": agent,
        }
        # The asking socket hears of its own request directly and again
        # through the layer; the second says nothing new.
        if frame != self.last_status:
            self.last_status = frame
            await self.send_json(frame)
        return status

    async def conversation_queue(self, event: dict[str, Any]) -> None:
        # Where the conversation stands in the queue changed (an agent was
        # offered it): the customer sees a person is on the way.
        await self._send_queue_place()

    async def _send_queue_place(self, *, refresh: bool = False) -> None:
        """Where the waiting conversation stands; a refresh is sent only when
        it changed.

        While the conversation waits it is looked at again every
        QUEUE_REFRESH_SECONDS: agents going offline (their presence times
        out) or business hours ending send no event, and a customer told
        "about a minute" with nobody left to answer would wait on a promise.
        """
        from escalation.actions import queue_place

        place = await db_async(queue_place)(self.conversation_id)
        if self.queue_timer is not None:
            self.queue_timer.cancel()
            self.queue_timer = None
        if place is None:
            self.last_queue = None
            return
        frame = {
            "type": "queue",
            "position": place.position,
            "wait_minutes": place.wait_minutes,
            "agents_online": place.agents_online,
        }
        self.queue_timer = asyncio.get_running_loop().call_later(
            QUEUE_REFRESH_SECONDS, self._refresh_queue_place
        )
        if not refresh or frame != self.last_queue:
            self.last_queue = frame
            await self.send_json(frame)

    def _refresh_queue_place(self) -> None:
        self.queue_timer = None
        if not self.closed:
            task = asyncio.ensure_future(self._refresh())
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _refresh(self) -> None:
        try:
            await self._send_queue_place(refresh=True)
        except Exception:
            # The database is away, say: the next change of the queue or of
            # the conversation sends the place again.
            logger.warning("The queue place was not refreshed", exc_info=True)

    async def visitor_erased(self, event: dict[str, Any]) -> None:
        await self.close(code=VISITOR_ERASED_CLOSE_CODE)

    async def layer_resumed(self, event: dict[str, Any]) -> None:
        """The channel layer lost Redis for a while, and with it whatever was
        published meanwhile: catch up from the database, as a widget that
        reconnects would."""
        if self.visitor is None:
            return
        if self.conversation_id is None:
            latest = await db_async(latest_conversation_id)(self.visitor.pk)
            if latest is None:
                return
            await self._join_conversation(latest)
        await self._catch_up()

    async def visitor_conversation(self, event: dict[str, Any]) -> None:
        # Another tab of this visitor started the first conversation, maybe
        # by asking for a person: its status may already be past "bot".
        if self.conversation_id is None:
            await self._join_conversation(event["conversation"])
            await self._catch_up()

    async def _catch_up(self) -> None:
        """What this socket may have missed of its conversation: the messages
        after the last it sent, the status and the place in the queue."""
        async with self.deliver_lock:
            if self.sent_seq is not None:
                await self._send_stored_after(self.sent_seq, replay=False)
        if await self._send_status("", None) == Conversation.Status.WAITING:
            await self._send_queue_place()

    # --- delivery -----------------------------------------------------------

    async def reply_typing(self, frame: dict[str, Any]) -> None:
        self._own_stream(frame["stream"])
        await self.send_json(frame)

    async def reply_delta(self, frame: dict[str, Any]) -> None:
        self._own_stream(frame["stream"])
        await self.send_json(frame)

    def _own_stream(self, stream: str) -> None:
        if stream not in self.own_streams:
            self.own_streams.append(stream)

    async def reply_stored(self, message: Message) -> None:
        await self._deliver(message.as_frame())

    async def _deliver(self, frame: dict[str, Any]) -> None:
        """Send a stored message once, after any this socket has missed."""
        async with self.deliver_lock:
            if self.sent_seq is None or frame["conversation"] != self.conversation_id:
                return
            seq = frame["seq"]
            if seq <= self.sent_seq:
                return
            if seq > self.sent_seq + 1:
                await self._send_stored_after(self.sent_seq, replay=False)
                if seq <= self.sent_seq:
                    return
            await self._send_message(frame, replay=False)

    async def _send_stored_after(self, after_seq: int, *, replay: bool) -> None:
        """Send what is stored after `after_seq`; `deliver_lock` must be held."""
        while True:
            page = await db_async(messages_after)(
                self.conversation_id, after_seq, REPLAY_PAGE
            )
            for message in page:
                await self._send_message(message.as_frame(), replay=replay)
                after_seq = message.seq
            if len(page) < REPLAY_PAGE:
                return

    async def _send_stored(
        self, after_seq: int, upto_seq: int, *, replay: bool
    ) -> None:
        """Resend `after_seq < seq <= upto_seq`, leaving `sent_seq` as it is."""
        while after_seq < upto_seq:
            page = await db_async(messages_after)(
                self.conversation_id, after_seq, min(REPLAY_PAGE, upto_seq - after_seq)
            )
            if not page:
                return
            for message in page:
                frame = message.as_frame()
                if frame["stream"]:
                    self.settled_streams.append(frame["stream"])
                await self.send_json({**frame, "replay": replay})
                after_seq = message.seq

    async def _send_message(self, frame: dict[str, Any], *, replay: bool) -> None:
        """Precondition: `deliver_lock` is held."""
        if frame["stream"]:
            self.settled_streams.append(frame["stream"])
        await self.send_json({**frame, "replay": replay})
        self.sent_seq = frame["seq"]

    async def _join_conversation(self, conversation_id: Any) -> None:
        self.conversation_id = str(conversation_id)
        group = live.conversation_group(conversation_id)
        await self._join(group)
        live.socket_joined(self.channel_layer, group)

    async def _join(self, group: str) -> None:
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except LAYER_DOWN:
            # Not subscribed: the layer forgets this socket's membership too.
            await self.channel_layer.group_discard(group, self.channel_name)
            raise
        self.groups_joined.append(group)
