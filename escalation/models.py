import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.models import Conversation

AGENTS_GROUP = "Support agents"


class Escalation(models.Model):
    """A conversation handed from the bot to people, and what became of it."""

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", "Customer asked for a person"
        LLM_ERROR = "llm_error", "The language model failed"
        NO_ANSWER = "no_answer", "The bot had no answer"
        LOW_CONFIDENCE = "low_confidence", "The bot was not confident"
        GUIDELINE = "guideline", "A guideline hands this topic to people"
        GUARDRAIL = "guardrail", "The answer failed a guardrail and was withdrawn"
        REVIEW = "review", "An answer waits for a person's approval"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        ASSIGNED = "assigned", "Offered to an agent"
        CLAIMED = "claimed", "Claimed"
        RESOLVED = "resolved", "Resolved"
        HANDED_BACK = "handed_back", "Handed back to the bot"

    OPEN_STATUSES = (Status.QUEUED, Status.ASSIGNED)

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="escalations"
    )
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=255, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    summary = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # When routing last looked at it; the sweep re-routes any left behind.
    routed_at = models.DateTimeField(null=True, blank=True)
    routing_attempts = models.PositiveIntegerField(default=0)
    # "Nobody is online" is said once per escalation, not at every routing try.
    told_no_agent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.created_at:%Y-%m-%d %H:%M})"


class AgentProfile(models.Model):
    """How much a support agent can take on, and whether they are there."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent"
    )
    capacity = models.PositiveSmallIntegerField(
        default=3, help_text="Conversations this agent handles at once."
    )
    # Refreshed by the agent console's heartbeat, and set when a console
    # closes.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Consoles open: each socket counts from its opening to its closing,
    # however it closed.
    consoles_open = models.PositiveIntegerField(default=0)
    # Once the last console closed, until when the agent still counts as
    # there: a few seconds after they closed the page (a reload opens the
    # next), the heartbeat timeout after a console was cut off (a dropped
    # network, a restarted server), which comes back by itself.
    present_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.user.first_name or self.user.get_username()


class SupportSettings(models.Model):
    """The one row of support-desk settings that admins edit."""

    claim_timeout_seconds = models.PositiveIntegerField(
        default=120,
        help_text="An offered conversation nobody claims within this time is "
        "offered to someone else.",
    )

    class Meta:
        verbose_name_plural = "support settings"

    def __str__(self) -> str:
        return "Support settings"

    @classmethod
    def load(cls) -> "SupportSettings":
        found, _ = cls.objects.get_or_create(pk=1)
        return found


class BusinessHours(models.Model):
    """When people answer. No rows at all means always."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0
        TUESDAY = 1
        WEDNESDAY = 2
        THURSDAY = 3
        FRIDAY = 4
        SATURDAY = 5
        SUNDAY = 6

    weekday = models.IntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "business hours"

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    @classmethod
    def is_open(cls, at: datetime.datetime | None = None) -> bool:
        rows = list(cls.objects.all())
        if not rows:
            return True
        local = timezone.localtime(at or timezone.now())
        return any(
            r.weekday == local.weekday() and r.opens <= local.time() < r.closes
            for r in rows
        )


class CannedReply(models.Model):
    title = models.CharField(max_length=100)
    text = models.TextField()

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "canned replies"

    def __str__(self) -> str:
        return self.title


class InternalNote(models.Model):
    """A note between agents on a conversation; the customer never sees it."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Note on {self.conversation_id}"


class HeldAnswer(models.Model):
    """A bot answer waiting for a person's approval (supervised and copilot modes).

    The customer never sees it until an agent sends it, as it is or edited.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        SENT = "sent", "Sent"
        DISCARDED = "discarded", "Discarded"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="held_answers"
    )
    # The customer message it answers.
    reply_to = models.PositiveIntegerField()
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    edited = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Held answer to #{self.reply_to} ({self.status})"

    def as_frame(self) -> dict[str, object]:
        return {
            "type": "draft",
            "conversation": str(self.conversation_id),
            "draft": self.pk,
            "reply_to": self.reply_to,
            "text": self.text,
            "status": self.status,
            "metadata": self.metadata,
        }
