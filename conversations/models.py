import hashlib
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Visitor(models.Model):
    """Someone chatting through the widget, known only by a secret token.

    The token lives in the visitor's browser; the database keeps its hash, so a
    leaked database does not let anyone read a visitor's conversations.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Visitor {str(self.id)[:8]}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot", "Bot"
        WAITING = "waiting", "Waiting for a person"
        HUMAN = "human", "With a person"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visitor = models.ForeignKey(
        Visitor, on_delete=models.CASCADE, related_name="conversations"
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.BOT, db_index=True
    )
    # The person who owns the conversation while its status is "human".
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    # The highest seq handed out; the next message takes last_seq + 1 while the
    # row is locked, which keeps seq gap-free under concurrent writers.
    last_seq = models.PositiveIntegerField(default=0)
    # Turns up to summary_until_seq are folded into summary (see bot.memory).
    summary = models.TextField(blank=True)
    summary_until_seq = models.PositiveIntegerField(default=0)
    # Tokens of the messages after summary_until_seq, kept up to date on every
    # append so deciding to fold costs no query.
    memory_tokens = models.PositiveIntegerField(default=0)
    # When a web process last took up a question left unanswered by another
    # (see conversations.recovery); only one may answer it at a time.
    answer_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["visitor", "-created_at"])]

    def __str__(self) -> str:
        return f"Conversation {str(self.id)[:8]} ({self.status})"


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    # Chosen by the client so a retry after a reconnect is recognised. NULL, not
    # "", for messages without one, so the unique constraint ignores them.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    token_count = models.PositiveIntegerField(default=0)
    # Confidence, sources, model, token usage, latency, interruption.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "seq"], name="message_seq_unique"
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.role}"

    def as_frame(self) -> dict[str, Any]:
        """The `message` frame of docs/protocol.md."""
        meta = self.metadata
        # Only when loaded with select_related("feedback"): a frame must never
        # cost a query per message.
        cached = self._state.fields_cache.get("feedback")
        return {
            "type": "message",
            "conversation": str(self.conversation_id),
            "seq": self.seq,
            "role": self.role,
            "text": self.text,
            "client_id": self.client_id,
            "created_at": self.created_at.isoformat(),
            "author": meta.get("author"),
            "sources": meta.get("sources", []),
            "reply_to": meta.get("reply_to"),
            "stream": meta.get("stream"),
            "interrupted": bool(meta.get("interrupted", False)),
            "withdrawn": bool(meta.get("withdrawn", False)),
            "feedback": cached.rating if cached is not None else None,
        }


class Feedback(models.Model):
    """A customer's rating of one bot answer."""

    class Rating(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="feedback"
    )
    rating = models.CharField(max_length=8, choices=Rating.choices)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.rating} on {self.message}"
