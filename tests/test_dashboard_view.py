"""The dashboard and its CSV are for staff only and show the period asked for."""

import csv
import datetime
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from oversight.models import Alert
from tests.scripted import Script, bot, customer, store

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_days(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    for day, reason in ((1, "no_answer"), (2, None)):
        started = datetime.datetime(2026, 11, day, 10, tzinfo=datetime.UTC)
        store(
            Script(
                started,
                [customer(0), bot(1, model="m", latency_ms=800, first_delta_ms=90)],
                escalations=[(reason, 2)] if reason else [],
            )
        )


def test_visitors_and_agents_are_sent_to_the_admin_login(client: Client) -> None:
    agent = User.objects.create_user("dana", password="pw-dana-123")

    anonymous = client.get("/dashboard/")
    client.force_login(agent)
    not_staff = client.get("/dashboard/export.csv")

    for response in (anonymous, not_staff):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_see_charts_for_the_chosen_period(
    admin_client: Client, two_days: None
) -> None:
    response = admin_client.get(
        "/dashboard/", {"period": "custom", "from": "2026-11-01", "to": "2026-11-02"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<svg class="chart"') == 14
    assert "Conversations per day" in page
    assert "The bot had no answer" in page
    period = response.context["period"]
    assert (period.start.isoformat(), period.end.isoformat()) == (
        "2026-11-01T00:00:00+00:00",
        "2026-11-03T00:00:00+00:00",
    )
    assert "2026-11-03 00:00" in page


def test_a_bad_custom_range_falls_back_to_a_week(admin_client: Client) -> None:
    response = admin_client.get(
        "/dashboard/", {"period": "custom", "from": "2026-11-05", "to": "2026-11-01"}
    )

    assert response.status_code == 200
    assert response.context["period"].key == "7d"
    assert "must come before" in response.content.decode()


@pytest.mark.parametrize(
    ("time_zone", "first", "last"),
    [
        ("UTC", "9999-12-31", "9999-12-31"),  # no day comes after the last
        ("UTC", "9999-12-30", "9999-12-31"),
        # Its midnight is in year 0 in UTC, where SQLite keeps times.
        ("Asia/Tokyo", "0001-01-01", "0001-01-01"),
    ],
)
def test_dates_at_the_ends_of_the_calendar_fall_back_to_a_week(
    admin_client: Client, settings: Any, time_zone: str, first: str, last: str
) -> None:
    settings.TIME_ZONE = time_zone
    query = {"period": "custom", "from": first, "to": last}

    page = admin_client.get("/dashboard/", query)
    export = admin_client.get("/dashboard/export.csv", query)

    assert (page.status_code, export.status_code) == (200, 200)
    assert page.context["period"].key == "7d"
    assert "too far in the past or future" in page.content.decode()


def test_csv_has_a_row_a_day_and_the_total(
    admin_client: Client, two_days: None
) -> None:
    response = admin_client.get(
        "/dashboard/export.csv",
        {"period": "custom", "from": "2026-11-01", "to": "2026-11-02"},
    )

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["day"] for r in rows] == ["2026-11-01", "2026-11-02", "total"]
    assert [r["conversations"] for r in rows] == ["1", "1", "2"]
    assert [r["escalation_rate"] for r in rows] == ["1", "0", "0.5"]
    assert [r["escalations_no_answer"] for r in rows] == ["1", "0", "1"]
    assert [r["llm_latency_p95_ms"] for r in rows] == ["800", "800", "800"]
    assert rows[0]["satisfaction_bot_only"] == ""


def test_an_open_alert_shows_on_the_dashboard_and_in_admin(
    admin_client: Client,
) -> None:
    Alert.objects.create(kind=Alert.Kind.LLM_ERROR_RATE, value=0.4, baseline=0.01)
    Alert.objects.create(
        kind=Alert.Kind.LATENCY_P95, value=9, baseline=1, closed_at=timezone.now()
    )

    for url in ("/dashboard/", "/admin/"):
        page = admin_client.get(url).content.decode()
        assert page.count('class="oversight-alert') == 1, url
        assert "Alert: LLM error rate" in page
