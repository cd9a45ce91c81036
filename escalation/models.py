from django.db import models

from conversations.models import Conversation


class Escalation(models.Model):
    """A conversation handed from the bot to people, and why."""

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", "Customer asked for a person"
        LLM_ERROR = "llm_error", "The language model failed"
        NO_ANSWER = "no_answer", "The bot had no answer"
        LOW_CONFIDENCE = "low_confidence", "The bot was not confident"
        GUIDELINE = "guideline", "A guideline hands this topic to people"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="escalations"
    )
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=255, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.created_at:%Y-%m-%d %H:%M})"
