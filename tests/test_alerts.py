"""A spike in the last hour opens one alert and sends one email, however many
checks it lasts, and the alert closes when the hour is back to normal."""

import datetime
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from oversight.alerts import check_alerts
from oversight.models import Alert
from oversight.tasks import check_alerts_task
from tests.scripted import Script, bot, customer, store

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now().replace(microsecond=0)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _alert_settings(settings: Any) -> None:
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_MIN_SAMPLES = 10
    settings.ALERT_ESCALATION_RATE_MARGIN = 0.15


def chats(
    start: datetime.datetime, count: int, escalated: int, spread: datetime.timedelta
) -> None:
    """`count` answered conversations over `spread`, `escalated` of them handed on."""
    step = spread / count
    for i in range(count):
        store(
            Script(
                start + step * i,
                [customer(0), bot(0.5, model="offline", latency_ms=50)],
                escalations=[("no_answer", 0.5)] if i < escalated else [],
            )
        )


@pytest.fixture
def quiet_week() -> None:
    # One in ten escalated over the week before the last hour.
    chats(NOW - HOUR - datetime.timedelta(days=7), 70, 7, datetime.timedelta(days=7))


def test_a_spike_opens_one_alert_and_emails_once(quiet_week: None) -> None:
    chats(NOW - HOUR + datetime.timedelta(minutes=1), 10, 6, HOUR / 2)

    check_alerts(NOW)
    check_alerts(NOW + datetime.timedelta(minutes=10))

    alert = Alert.objects.get()
    assert (alert.kind, alert.closed_at) == ("escalation_rate", None)
    assert (alert.value, alert.baseline) == (0.6, 0.1)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "Escalation rate" in mail.outbox[0].subject


def test_the_alert_closes_when_the_hour_is_normal_again(quiet_week: None) -> None:
    chats(NOW - HOUR + datetime.timedelta(minutes=1), 10, 6, HOUR / 2)
    check_alerts(NOW)
    # The next hour is back to one in ten.
    chats(NOW + datetime.timedelta(minutes=1), 10, 1, HOUR / 2)

    check_alerts(NOW + HOUR)

    alert = Alert.objects.get()
    assert alert.closed_at is not None
    assert len(mail.outbox) == 1


def test_a_normal_hour_opens_nothing(quiet_week: None) -> None:
    chats(NOW - HOUR + datetime.timedelta(minutes=1), 10, 2, HOUR / 2)

    checks = check_alerts(NOW)

    assert Alert.objects.count() == 0
    assert mail.outbox == []
    assert {c.kind: c.value for c in checks}["escalation_rate"] == 0.2


def test_a_quiet_hour_decides_nothing(quiet_week: None) -> None:
    chats(NOW - HOUR + datetime.timedelta(minutes=1), 3, 3, HOUR / 2)

    check_alerts(NOW)

    assert Alert.objects.count() == 0


def test_beat_runs_the_check_every_ten_minutes(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["check-alerts"]

    assert entry == {"task": "oversight.tasks.check_alerts_task", "schedule": 600}
    check_alerts_task.delay()
