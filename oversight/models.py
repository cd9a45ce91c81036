from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from conversations.models import Conversation
from conversations.protocol import MAX_RATING_COMMENT


class ConversationRating(models.Model):
    """The customer's rating of a whole conversation; rating again replaces it."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="rating"
    )
    score = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(blank=True, max_length=MAX_RATING_COMMENT)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=1, score__lte=5),
                name="conversation_rating_score_1_to_5",
            )
        ]

    def __str__(self) -> str:
        return f"{self.score}/5 on {self.conversation}"


class ReviewItem(models.Model):
    """An answer worth a person's look: something to learn from or to fix."""

    class Kind(models.TextChoices):
        NOT_HELPFUL = "not_helpful", "Rated not helpful"
        AGENT_EDIT = "agent_edit", "Agent edited a bot draft"
        AGENT_ANSWER = "agent_answer", "Agent answered an escalated question"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="review_items"
    )
    # The answer's seq; for an agent answer spread over several messages, the
    # first of them.
    message_seq = models.PositiveIntegerField()
    # The customer message the answer answers, when there is one.
    question_seq = models.PositiveIntegerField(null=True, blank=True)
    question = models.TextField(blank=True)
    answer = models.TextField()
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A rating flipped down, up and down again is one item, not three.
            models.UniqueConstraint(
                fields=["kind", "conversation", "message_seq"],
                name="review_item_once_per_message",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.question[:60]}"


class Alert(models.Model):
    """One incident: a figure of the last hour out of line with the week before."""

    class Kind(models.TextChoices):
        ESCALATION_RATE = "escalation_rate", "Escalation rate"
        LLM_ERROR_RATE = "llm_error_rate", "LLM error rate"
        LATENCY_P95 = "latency_p95", "LLM latency (95th percentile, ms)"
        NOT_HELPFUL_RATE = "not_helpful_rate", '"Not helpful" rate'

    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The figure when the alert opened, and the week's figure it was held to.
    value = models.FloatField()
    baseline = models.FloatField()
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # Once per incident: a second open alert of a kind cannot exist,
            # even if two checks race.
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(closed_at__isnull=True),
                name="alert_one_open_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} since {self.opened_at:%Y-%m-%d %H:%M}"
