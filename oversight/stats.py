"""The dashboard's figures over a period, computed from stored rows.

Conversations are counted by the day they started, and every figure of a
conversation (its answers, escalations, rating, tokens) belongs to that day,
even when a later message fell on the next day. That keeps a day's figures
fixed once its conversations are over, and a day's rows in the CSV add up to
the period's.

Medians are the usual middle value (the mean of the two middle ones for an
even count); the 95th percentile is the nearest-rank one, a value that was
actually measured.
"""

import datetime
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from conversations.models import Conversation, Message
from escalation.models import Escalation

from .models import ConversationRating

# A conversation whose last bot answer got no reply and no escalation for this
# long is assumed resolved.
ASSUMED_AFTER = datetime.timedelta(hours=24)
CONFIRMING_SCORE = 4


@dataclass
class _Facts:
    """What one conversation contributes to the figures."""

    day: datetime.date
    escalation_reasons: list[str] = field(default_factory=list)
    escalated_at: list[datetime.datetime] = field(default_factory=list)
    thumbs_up: bool = False
    score: int | None = None
    last_bot_at: datetime.datetime | None = None
    customer_after_bot: bool = False
    bot_first_ms: int | None = None
    people_first_s: list[float] = field(default_factory=list)
    llm_latency_ms: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # article id -> (title, answers citing it, of which rated not helpful)
    articles: dict[int, tuple[str, int, int]] = field(default_factory=dict)

    @property
    def escalated(self) -> bool:
        return bool(self.escalation_reasons)

    @property
    def confirmed(self) -> bool:
        rated_well = self.score is not None and self.score >= CONFIRMING_SCORE
        return not self.escalated and (self.thumbs_up or rated_well)

    def assumed(self, now: datetime.datetime) -> bool:
        return (
            not self.escalated
            and not self.confirmed
            and self.last_bot_at is not None
            and not self.customer_after_bot
            and now - self.last_bot_at >= ASSUMED_AFTER
        )


@dataclass(frozen=True)
class ArticleFigure:
    id: int
    title: str
    answers: int
    not_helpful: int

    @property
    def rate(self) -> float:
        return self.not_helpful / self.answers


@dataclass(frozen=True)
class Figures:
    conversations: int
    resolved_confirmed: int
    resolved_assumed: int
    escalated: int
    escalation_reasons: dict[str, int]
    bot_first_response_ms: float | None
    people_first_response_s: float | None
    llm_latency_median_ms: float | None
    llm_latency_p95_ms: float | None
    tokens: int
    cost: float
    satisfaction_bot_only: float | None
    satisfaction_escalated: float | None
    articles: list[ArticleFigure]

    @property
    def confirmed_share(self) -> float | None:
        return _share(self.resolved_confirmed, self.conversations)

    @property
    def assumed_share(self) -> float | None:
        return _share(self.resolved_assumed, self.conversations)

    @property
    def escalation_rate(self) -> float | None:
        return _share(self.escalated, self.conversations)

    @property
    def tokens_per_conversation(self) -> float | None:
        return _share(self.tokens, self.conversations)

    @property
    def cost_per_conversation(self) -> float | None:
        return _share(self.cost, self.conversations)


@dataclass(frozen=True)
class DayFigures:
    day: datetime.date
    figures: Figures


def figures(
    start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> Figures:
    """The figures of conversations started in `start <= t < end`, as of `now`."""
    return _aggregate(_load(start, end).values(), now)


def daily_figures(
    start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> list[DayFigures]:
    """The figures of each local day of the period, days without data included."""
    by_day: dict[datetime.date, list[_Facts]] = defaultdict(list)
    for facts in _load(start, end).values():
        by_day[facts.day].append(facts)
    first = timezone.localtime(start).date()
    last = timezone.localtime(end - datetime.timedelta(microseconds=1)).date()
    days = [first + datetime.timedelta(n) for n in range((last - first).days + 1)]
    return [DayFigures(day, _aggregate(by_day[day], now)) for day in days]


# --- Loading ------------------------------------------------------------------


def _load(start: datetime.datetime, end: datetime.datetime) -> dict[Any, _Facts]:
    conversations = Conversation.objects.filter(
        created_at__gte=start, created_at__lt=end
    )
    facts = {
        pk: _Facts(day=timezone.localtime(created).date())
        for pk, created in conversations.values_list("id", "created_at")
    }
    escalations = Escalation.objects.filter(conversation__in=conversations)
    for pk, reason, created in escalations.order_by("created_at").values_list(
        "conversation_id", "reason", "created_at"
    ):
        facts[pk].escalation_reasons.append(reason)
        facts[pk].escalated_at.append(created)
    ratings = ConversationRating.objects.filter(conversation__in=conversations)
    for pk, score in ratings.values_list("conversation_id", "score"):
        facts[pk].score = score
    messages = (
        Message.objects.filter(conversation__in=conversations)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("conversation_id", "seq")
        .values_list("conversation_id", "role", "created_at", "metadata")
    )
    pending: dict[Any, list[datetime.datetime]] = {
        pk: list(f.escalated_at) for pk, f in facts.items()
    }
    for pk, role, created, meta in messages.iterator(chunk_size=2000):
        _add_message(facts[pk], pending[pk], role, created, meta)
    _add_feedback(facts, conversations)
    return facts


def _add_message(
    facts: _Facts,
    waiting_since: list[datetime.datetime],
    role: str,
    created: datetime.datetime,
    meta: dict[str, Any],
) -> None:
    if role == Message.Role.CUSTOMER:
        facts.customer_after_bot = facts.last_bot_at is not None
    elif role == Message.Role.AGENT:
        # The first agent message after an escalation answers it.
        for at in [at for at in waiting_since if at <= created]:
            facts.people_first_s.append((created - at).total_seconds())
            waiting_since.remove(at)
    elif role == Message.Role.BOT:
        _add_bot_answer(facts, created, meta)


def _add_bot_answer(
    facts: _Facts, created: datetime.datetime, meta: dict[str, Any]
) -> None:
    if not meta.get("interrupted"):
        facts.last_bot_at = created
        facts.customer_after_bot = False
    timing = meta.get("first_delta_ms", meta.get("latency_ms"))
    if facts.bot_first_ms is None and isinstance(timing, int):
        facts.bot_first_ms = timing
    model = meta.get("model")
    latency = meta.get("latency_ms")
    if model and model != "offline" and isinstance(latency, int):
        facts.llm_latency_ms.append(latency)
    facts.prompt_tokens += int(meta.get("prompt_tokens") or 0)
    facts.completion_tokens += int(meta.get("completion_tokens") or 0)


def _add_feedback(facts: dict[Any, _Facts], conversations: Any) -> None:
    rated = (
        Message.objects.filter(conversation__in=conversations, role=Message.Role.BOT)
        .select_related("feedback")
        .only("conversation_id", "metadata", "feedback__rating")
    )
    # Answers without feedback still count towards an article's answers.
    for message in rated.iterator(chunk_size=2000):
        own = facts[message.conversation_id]
        rating = getattr(message, "feedback", None)
        down = rating is not None and rating.rating == "down"
        if rating is not None and rating.rating == "up":
            own.thumbs_up = True
        for source in message.metadata.get("sources") or []:
            title, answers, unhelpful = own.articles.get(source["id"], ("", 0, 0))
            own.articles[source["id"]] = (
                source.get("title") or title,
                answers + 1,
                unhelpful + int(down),
            )


# --- Aggregating ----------------------------------------------------------------


def _aggregate(all_facts: Iterable[_Facts], now: datetime.datetime) -> Figures:
    rows = list(all_facts)
    latencies = sorted(ms for f in rows for ms in f.llm_latency_ms)
    prompt = sum(f.prompt_tokens for f in rows)
    completion = sum(f.completion_tokens for f in rows)
    cost = (
        prompt * settings.LLM_PRICE_PROMPT_PER_1K
        + completion * settings.LLM_PRICE_COMPLETION_PER_1K
    ) / 1000
    return Figures(
        conversations=len(rows),
        resolved_confirmed=sum(f.confirmed for f in rows),
        resolved_assumed=sum(f.assumed(now) for f in rows),
        escalated=sum(f.escalated for f in rows),
        escalation_reasons=dict(
            Counter(r for f in rows for r in f.escalation_reasons).most_common()
        ),
        bot_first_response_ms=_median(
            [f.bot_first_ms for f in rows if f.bot_first_ms is not None]
        ),
        people_first_response_s=_median([s for f in rows for s in f.people_first_s]),
        llm_latency_median_ms=_median(latencies),
        llm_latency_p95_ms=percentile(latencies, 95),
        tokens=prompt + completion,
        cost=cost,
        satisfaction_bot_only=_mean(
            [f.score for f in rows if f.score is not None and not f.escalated]
        ),
        satisfaction_escalated=_mean(
            [f.score for f in rows if f.score is not None and f.escalated]
        ),
        articles=_articles(rows),
    )


def _articles(rows: list[_Facts]) -> list[ArticleFigure]:
    titles: dict[int, str] = {}
    counts: Counter[tuple[int, str]] = Counter()
    for f in rows:
        for pk, (title, answers, unhelpful) in f.articles.items():
            titles[pk] = title
            counts[(pk, "answers")] += answers
            counts[(pk, "down")] += unhelpful
    found = [
        ArticleFigure(pk, title, counts[(pk, "answers")], counts[(pk, "down")])
        for pk, title in titles.items()
    ]
    return sorted(found, key=lambda a: (-a.rate, -a.not_helpful, a.title))


def percentile(values: list[int] | list[float], pct: float) -> float | None:
    """Nearest rank: the smallest measured value with `pct` % at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)])


def _median(values: list[int] | list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _mean(values: list[int]) -> float | None:
    return statistics.fmean(values) if values else None


def _share(part: float, whole: int) -> float | None:
    return part / whole if whole else None
