"""Alerts: the last hour held against the seven days before it.

Each check measures four figures over the last hour and over the previous
week. A figure out of line opens an alert and emails the admins; while it
stays out of line later checks change nothing; once a check finds it back in
line the alert closes. So one incident is one alert and one email, however
many checks it lasts.

The week's rates are pooled (all escalations over all conversations of the
week), which equals the average hour weighted by traffic and is not thrown
by quiet night hours with one or two conversations.
"""

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations.models import Feedback, Message
from escalation.models import Escalation

from .models import Alert
from .stats import percentile

logger = logging.getLogger(__name__)

WINDOW = datetime.timedelta(hours=1)
BASELINE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Measure:
    """A figure and how many events it rests on."""

    value: float | None
    samples: int


@dataclass(frozen=True)
class Check:
    kind: str
    value: float | None
    baseline: float | None
    limit: float | None
    samples: int

    @property
    def decided(self) -> bool:
        """Whether there was enough traffic in the hour to say anything."""
        return self.value is not None and self.samples >= settings.ALERT_MIN_SAMPLES

    @property
    def out_of_line(self) -> bool:
        return (
            self.decided
            and self.limit is not None
            and self.value is not None
            and self.value > self.limit
        )


def check_alerts(now: datetime.datetime | None = None) -> list[Check]:
    """Measure, then open or close alerts. Safe to run concurrently or twice."""
    now = now or timezone.now()
    checks = [_check(kind, measure, now) for kind, measure in MEASURES.items()]
    for check in checks:
        if check.out_of_line:
            _open(check)
        elif check.decided:
            _close(check)
    return checks


def _check(
    kind: str,
    measure: Callable[[datetime.datetime, datetime.datetime], Measure],
    now: datetime.datetime,
) -> Check:
    hour = measure(now - WINDOW, now)
    week = measure(now - WINDOW - BASELINE, now - WINDOW)
    return Check(kind, hour.value, week.value, _limit(kind, week.value), hour.samples)


def _limit(kind: str, baseline: float | None) -> float | None:
    if kind == Alert.Kind.LATENCY_P95:
        # No week to compare with: no judgement on latency, which has no
        # natural scale the way a rate does.
        if baseline is None:
            return None
        return float(baseline * settings.ALERT_LATENCY_P95_FACTOR)
    margins: dict[str, float] = {
        Alert.Kind.ESCALATION_RATE: settings.ALERT_ESCALATION_RATE_MARGIN,
        Alert.Kind.LLM_ERROR_RATE: settings.ALERT_LLM_ERROR_RATE_MARGIN,
        Alert.Kind.NOT_HELPFUL_RATE: settings.ALERT_NOT_HELPFUL_RATE_MARGIN,
    }
    return (baseline or 0.0) + float(margins[kind])


def _open(check: Check) -> None:
    assert check.value is not None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                kind=check.kind, value=check.value, baseline=check.baseline or 0.0
            )
            transaction.on_commit(partial(_email, alert))
    except IntegrityError:
        # Already open: the same incident, which was announced when it began.
        return
    logger.warning(
        "Alert opened: %s is %.3f against %.3f",
        check.kind,
        check.value,
        check.baseline or 0.0,
        extra={"alert_id": alert.pk, "kind": check.kind},
    )


def _close(check: Check) -> None:
    closed = Alert.objects.filter(kind=check.kind, closed_at__isnull=True).update(
        closed_at=timezone.now()
    )
    if closed:
        logger.info("Alert closed: %s", check.kind, extra={"kind": check.kind})


def _email(alert: Alert) -> None:
    mail_admins(
        f"Alert: {alert.get_kind_display()}",
        f"{alert.get_kind_display()} over the last hour is {alert.value:.3f}; "
        f"over the previous seven days it was {alert.baseline:.3f}.\n\n"
        "You will get no further email about it until it has closed, which it "
        "does once a check finds the figure back within its limit.",
    )


# --- Figures over a window ------------------------------------------------------


def escalation_rate(start: datetime.datetime, end: datetime.datetime) -> Measure:
    """Escalations per conversation the customers wrote in, in the window."""
    active = (
        Message.objects.filter(
            role=Message.Role.CUSTOMER, created_at__gte=start, created_at__lt=end
        )
        .values("conversation_id")
        .distinct()
        .count()
    )
    escalations = Escalation.objects.filter(
        created_at__gte=start, created_at__lt=end
    ).count()
    return Measure(escalations / active if active else None, active)


def _bot_answers(start: datetime.datetime, end: datetime.datetime) -> QuerySet[Message]:
    return Message.objects.filter(
        role=Message.Role.BOT, created_at__gte=start, created_at__lt=end
    )


def llm_error_rate(start: datetime.datetime, end: datetime.datetime) -> Measure:
    answers = _bot_answers(start, end)
    total = answers.count()
    failed = answers.filter(
        Q(metadata__has_key="error") | Q(metadata__interrupted=True)
    ).count()
    return Measure(failed / total if total else None, total)


def latency_p95(start: datetime.datetime, end: datetime.datetime) -> Measure:
    latencies = [
        ms
        for model, ms in _bot_answers(start, end).values_list(
            "metadata__model", "metadata__latency_ms"
        )
        if model and model != "offline" and isinstance(ms, int)
    ]
    return Measure(percentile(latencies, 95), len(latencies))


def not_helpful_rate(start: datetime.datetime, end: datetime.datetime) -> Measure:
    rated = Feedback.objects.filter(created_at__gte=start, created_at__lt=end)
    total = rated.count()
    down = rated.filter(rating=Feedback.Rating.DOWN).count()
    return Measure(down / total if total else None, total)


MEASURES = {
    Alert.Kind.ESCALATION_RATE: escalation_rate,
    Alert.Kind.LLM_ERROR_RATE: llm_error_rate,
    Alert.Kind.LATENCY_P95: latency_p95,
    Alert.Kind.NOT_HELPFUL_RATE: not_helpful_rate,
}
