"""The agent console's websocket (docs/agent-protocol.md).

Accepts only signed-in agents; every frame becomes one action call. The
console keeps its own last seen seq per conversation and re-opens with it
after a reconnect, so, as for the widget, the database is the guarantee and
the channel layer the fast path.
"""

import logging
import uuid
from typing import Any

from conversations import recovery, replies
from conversations.actions import ActionError
from conversations.consumers import messages_after
from conversations.models import Message
from conversations.protocol import (
    CLIENT_ID,
    FrameError,
    clean_text,
    decode,
    parse_after_seq,
    parse_typing,
)
from knowledge.actions import save_agent_answer
from knowledge.models import ARTICLE_TITLE_CHARS
from support_bot import live, metrics
from support_bot.consumers import PooledConsumer
from support_bot.db import db_async

from . import actions

logger = logging.getLogger(__name__)

AGENT_TYPES = frozenset(
    {
        "heartbeat",
        "open",
        "close",
        "claim",
        "reply",
        "note",
        "typing",
        "suggest",
        "resolve",
        "hand_back",
        "transfer",
        "save_article",
        "approve",
        "discard",
    }
)


# Close codes of a console the agent closed: the page was closed or left
# (1001), or the script closed it (1000). A dropped network (1006) or a
# server restarting (1012) is not the agent leaving: the console comes back.
LEFT_CODES = frozenset({1000, 1001})


def agent_message_frame(message: Message) -> dict[str, Any]:
    return {**message.as_frame(), "metadata": message.metadata}


class AgentConsumer(PooledConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not await db_async(actions.is_agent)(self.user):
            await self.close(code=4403)
            return
        # Per opened conversation, the last seq sent to this socket.
        self.opened: dict[str, int] = {}
        self.typing_in: set[str] = set()
        self.groups_joined: list[str] = []
        await self.accept()
        live.tell_when_resumed(self.channel_layer, self.channel_name)
        metrics.socket_opened("agent")
        await self._join(actions.AGENTS_LIVE_GROUP)
        await self._join(actions.agent_group(self.user.pk))
        await db_async(actions.agent_checked_in)(self.user, connected=True)
        await self._send_queue()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "groups_joined"):  # refused: never counted
            return
        metrics.socket_closed("agent")
        live.forget(self.channel_layer, self.channel_name)
        try:
            await db_async(actions.console_closed)(self.user, left=code in LEFT_CODES)
        except Exception:
            # The console counts as open until its heartbeat times out.
            logger.exception("Could not record that a console was closed")
        await self.leave_groups(self.groups_joined)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        frame: dict[str, Any] = {}
        try:
            frame = decode(text_data, AGENT_TYPES)
            await getattr(self, f"on_{frame['type']}")(frame)
        except FrameError as error:
            await self.send_json(error.as_frame())
        except ActionError as error:
            await self.send_json(
                {
                    "type": "error",
                    "code": error.code,
                    "message": error.message,
                    "conversation": frame.get("conversation"),
                }
            )
        except Exception:
            logger.exception("Agent frame failed")
            await self.send_json(
                {
                    "type": "error",
                    "code": "server_error",
                    "message": "Something went wrong on our side. Please try again.",
                    "conversation": frame.get("conversation"),
                }
            )

    # --- client frames ------------------------------------------------------

    async def on_heartbeat(self, frame: dict[str, Any]) -> None:
        await db_async(actions.agent_checked_in)(self.user)
        await self.send_json({"type": "heartbeat"})
        # The queue's live events can be missed (one published while this
        # socket's subscription was being set up, say): each heartbeat
        # brings the whole queue, offers to this agent included.
        await self._send_queue()

    async def on_open(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        after_seq = parse_after_seq(frame) if "after_seq" in frame else 0
        transcript = await db_async(actions.transcript)(conversation)
        if conversation not in self.opened:
            self.opened[conversation] = after_seq
            for group in _groups(conversation):
                await self._join(group)
        await self.send_json(transcript)
        await self._send_stored_after(conversation, after_seq)

    async def _send_stored_after(self, conversation: str, after_seq: int) -> None:
        while True:
            page = await db_async(messages_after)(conversation, after_seq, 200)
            for message in page:
                await self.send_json(agent_message_frame(message))
                after_seq = message.seq
                self._sent(conversation, message.seq)
            if len(page) < 200:
                break

    def _sent(self, conversation: str, seq: int) -> None:
        if conversation in self.opened and seq > self.opened[conversation]:
            self.opened[conversation] = seq

    async def on_close(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        if conversation in self.opened:
            del self.opened[conversation]
            for group in _groups(conversation):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def on_claim(self, frame: dict[str, Any]) -> None:
        await db_async(actions.claim_conversation)(self.user, _conversation(frame))

    async def on_reply(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
            raise FrameError("invalid_frame", "A reply needs a client_id.")
        text = clean_text(frame.get("text"), "reply", client_id=client_id)
        message = await db_async(actions.post_agent_message)(
            self.user, conversation, client_id, text
        )
        await self.send_json(
            {"type": "ack", "client_id": client_id, "seq": message.seq}
        )

    async def on_note(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        text = clean_text(frame.get("text"), "note")
        await db_async(actions.add_note)(self.user, conversation, text)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        # Only the agent who has the conversation shows the customer a typing
        # line; a "stopped" ends only a line this socket started (the agent
        # may have handed the conversation on since).
        conversation = _conversation(frame)
        active = parse_typing(frame)
        if active:
            await db_async(actions.require_owner)(self.user, conversation)
            self.typing_in.add(conversation)
        elif conversation in self.typing_in:
            self.typing_in.discard(conversation)
        else:
            return
        await live.asend(
            live.conversation_group(conversation),
            {
                "type": "conversation.typing",
                "frame": {
                    "type": "typing",
                    "role": "agent",
                    "name": actions.agent_name(self.user),
                    "active": active,
                },
            },
        )

    async def on_suggest(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        text, sources = await replies.draft_reply(conversation)
        await self.send_json(
            {
                "type": "suggestion",
                "conversation": conversation,
                "text": text,
                "sources": sources,
            }
        )

    async def on_resolve(self, frame: dict[str, Any]) -> None:
        await db_async(actions.resolve_conversation)(self.user, _conversation(frame))

    async def on_hand_back(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        await db_async(actions.hand_back_to_bot)(self.user, conversation)
        # A question the customer asked meanwhile, that nobody answered, if
        # the bot is sure of its answer.
        await recovery.answer_owed(conversation, after_hand_back=True)

    async def on_transfer(self, frame: dict[str, Any]) -> None:
        target = frame.get("agent")
        if not isinstance(target, int) or isinstance(target, bool):
            raise FrameError("invalid_frame", "transfer needs the agent's id.")
        await db_async(actions.transfer_conversation)(
            self.user, _conversation(frame), target
        )

    async def on_save_article(self, frame: dict[str, Any]) -> None:
        conversation = _conversation(frame)
        seq = frame.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise FrameError("invalid_frame", "save_article needs the reply's seq.")
        title = clean_text(frame.get("title"), "title", ARTICLE_TITLE_CHARS)
        article = await db_async(save_agent_answer)(self.user, conversation, seq, title)
        await self.send_json(
            {
                "type": "article.saved",
                "conversation": conversation,
                "article": article.pk,
                "title": article.title,
            }
        )

    async def on_approve(self, frame: dict[str, Any]) -> None:
        draft = frame.get("draft")
        if not isinstance(draft, int) or isinstance(draft, bool):
            raise FrameError("invalid_frame", "approve needs the draft's id.")
        text = frame.get("text")
        if text is not None:
            text = clean_text(text, "draft")
        sent = await db_async(actions.send_held_answer)(self.user, draft, text)
        # A question the customer asked while the draft waited.
        await recovery.answer_owed(sent.conversation_id)

    async def on_discard(self, frame: dict[str, Any]) -> None:
        draft = frame.get("draft")
        if not isinstance(draft, int) or isinstance(draft, bool):
            raise FrameError("invalid_frame", "discard needs the draft's id.")
        await db_async(actions.discard_held_answer)(self.user, draft)

    async def agents_draft(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    # --- channel-layer events -----------------------------------------------

    async def agents_queue(self, event: dict[str, Any]) -> None:
        await self._send_queue()

    async def agents_assigned(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "assigned", "conversation": event["conversation"]}
        )

    async def agents_note(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def conversation_message(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        await self.send_json(
            {**frame, "metadata": event.get("metadata", {}), "replay": False}
        )
        self._sent(frame["conversation"], frame["seq"])

    async def layer_resumed(self, event: dict[str, Any]) -> None:
        """The channel layer lost Redis for a while, and with it whatever was
        published meanwhile: the queue, and each opened conversation's
        messages and status, again from the database."""
        await self._send_queue()
        for conversation, sent in list(self.opened.items()):
            transcript = await db_async(actions.transcript)(conversation)
            await self.send_json(transcript)
            await self._send_stored_after(conversation, sent)

    async def conversation_delta(self, event: dict[str, Any]) -> None:
        # The console shows stored messages only: the bot's streamed pieces
        # would be frames it throws away.
        return None

    async def conversation_typing(self, event: dict[str, Any]) -> None:
        if event["frame"].get("role") == "customer":
            await self.send_json(
                {**event["frame"], "conversation": event.get("conversation")}
            )

    async def conversation_status(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def visitor_conversation(self, event: dict[str, Any]) -> None:
        return None

    async def conversation_queue(self, event: dict[str, Any]) -> None:
        return None  # consoles follow the queue through agents.queue

    # --- helpers ------------------------------------------------------------

    async def _send_queue(self) -> None:
        items = await db_async(actions.queue_items)()
        agents = await db_async(actions.agents_available)()
        await self.send_json({"type": "queue", "items": items})
        await self.send_json({"type": "agents", "items": agents})

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)


def _conversation(frame: dict[str, Any]) -> str:
    """The conversation's id in one spelling, so `opened` holds each once."""
    value = frame.get("conversation")
    try:
        return str(uuid.UUID(value if isinstance(value, str) else ""))
    except ValueError:
        raise FrameError("invalid_frame", "Name the conversation.") from None


def _groups(conversation: str) -> tuple[str, str]:
    """What an opened conversation's socket listens to: messages and notes."""
    return (
        live.conversation_group(conversation),
        actions.conversation_agents_group(conversation),
    )
