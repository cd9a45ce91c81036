from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

ARTICLE_TITLE_CHARS = 200


class Article(models.Model):
    """A help-centre article the bot may answer from and cite."""

    title = models.CharField(max_length=ARTICLE_TITLE_CHARS)
    body = models.TextField()
    example_questions = models.TextField(
        blank=True,
        help_text="Questions this article answers, one a line. They teach "
        "retrieval how customers ask.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def questions(self) -> list[str]:
        return [q.strip() for q in self.example_questions.splitlines() if q.strip()]


class Guideline(models.Model):
    """A short rule for the bot, in plain language, whose text is versioned.

    `kind`, `order` and `active` mirror the published version, so the bot and
    the admin list read them without a join; edits live in `GuidelineVersion`
    rows until someone publishes them.
    """

    class Kind(models.TextChoices):
        TONE = "tone", "Tone"
        POLICY = "policy", "Policy"
        ALWAYS_HUMAN = "always_human", "Always hand to a person"
        NEVER_DO = "never_do", "Never do"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.POLICY)
    order = models.IntegerField(default=0)
    active = models.BooleanField(default=False)
    published = models.ForeignKey(
        "GuidelineVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        version = self.published or self.versions.order_by("-id").first()
        text = version.text if version else ""
        return f"{self.get_kind_display()}: {text[:60]}"


class GuidelineVersion(models.Model):
    """One saved edit of a guideline: its text and settings at that moment."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    guideline = models.ForeignKey(
        Guideline, on_delete=models.CASCADE, related_name="versions"
    )
    text = models.TextField()
    kind = models.CharField(max_length=20, choices=Guideline.Kind.choices)
    order = models.IntegerField()
    active = models.BooleanField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The version this one was restored from, for the history page.
    restored_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["guideline", "-id"]

    def __str__(self) -> str:
        return f"Version {self.pk} ({self.get_status_display()})"


def _default_name() -> str:
    return str(settings.BOT_NAME)


def _default_persona() -> str:
    return str(settings.BOT_INSTRUCTIONS)


def _default_greeting() -> str:
    return str(settings.BOT_GREETING)


def _default_model() -> str:
    return str(settings.LLM_MODEL)


def _default_temperature() -> float:
    return float(settings.LLM_TEMPERATURE)


def _default_max_answer_tokens() -> int:
    return int(settings.LLM_MAX_TOKENS)


def _default_memory_token_budget() -> int:
    return int(settings.MEMORY_TOKEN_BUDGET)


def _default_confidence_threshold() -> float:
    return float(settings.CONFIDENCE_THRESHOLD)


class BotSettings(models.Model):
    """The one row (pk=1) of bot settings that admins edit.

    New fields start from the environment's settings, so creating the row in
    admin changes nothing until someone edits a value.
    """

    class ReviewMode(models.TextChoices):
        AUTOPILOT = "autopilot", "Autopilot: answers go straight out"
        SUPERVISED = (
            "supervised",
            ("Supervised: answers under the threshold wait for an agent"),
        )
        COPILOT = "copilot", "Copilot: every answer is a draft for an agent"

    name = models.CharField(max_length=100, default=_default_name)
    persona = models.TextField(
        default=_default_persona,
        help_text="Instructions on who the bot is and how it speaks. {name} is "
        "replaced by the bot's name.",
    )
    greeting = models.TextField(default=_default_greeting)
    model = models.CharField(
        max_length=200,
        default=_default_model,
        help_text="The model name sent to the OpenAI-compatible server. Unused "
        "by the offline responder.",
    )
    temperature = models.FloatField(
        default=_default_temperature,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
    )
    max_answer_tokens = models.PositiveIntegerField(
        default=_default_max_answer_tokens,
        validators=[MinValueValidator(1)],
        help_text="The longest answer the model may write, in tokens.",
    )
    memory_token_budget = models.PositiveIntegerField(
        default=_default_memory_token_budget,
        validators=[MinValueValidator(1)],
        help_text="Tokens of recent conversation kept word for word; older "
        "turns are summarised.",
    )
    confidence_threshold = models.FloatField(
        default=_default_confidence_threshold,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Answers less confident than this (0 to 1) are not sent as "
        "they are: they escalate, or wait for an agent in supervised mode.",
    )
    review_mode = models.CharField(
        max_length=20, choices=ReviewMode.choices, default=ReviewMode.AUTOPILOT
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "bot settings"

    def __str__(self) -> str:
        return "Bot settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # There is only ever one row; the bot reads pk=1.
        self.pk = 1
        super().save(*args, **kwargs)

    def clean(self) -> None:
        try:
            self.persona.format(name=self.name)
        except (KeyError, IndexError, ValueError) as error:
            raise ValidationError(
                {
                    "persona": "Only {name} may appear in braces; write {{ and }} "
                    f"for a literal brace ({error!r})."
                }
            ) from error
