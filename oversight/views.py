"""The staff dashboard: the figures of stats.py over a chosen period."""

import csv
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import SafeString

from escalation.models import Escalation

from . import charts, stats

PRESETS = {
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
}
# A year of daily rows is as much as one page or file should carry.
MAX_CUSTOM_DAYS = 366


@dataclass(frozen=True)
class Period:
    key: str
    start: datetime.datetime
    end: datetime.datetime
    error: str = ""

    def query(self) -> str:
        params = QueryDict(mutable=True)
        params["period"] = self.key
        if self.key == "custom":
            params["from"] = timezone.localtime(self.start).date().isoformat()
            last = self.end - datetime.timedelta(days=1)
            params["to"] = timezone.localtime(last).date().isoformat()
        return params.urlencode()


def parse_period(params: QueryDict, now: datetime.datetime) -> Period:
    """The period the query asks for; a bad custom range falls back to 7 days."""
    key = params.get("period", "7d")
    if key in PRESETS:
        return Period(key, now - PRESETS[key], now)
    if key == "custom":
        try:
            first = datetime.date.fromisoformat(params.get("from", ""))
            last = datetime.date.fromisoformat(params.get("to", ""))
        except ValueError:
            return _fallback(now, "Enter both dates as YYYY-MM-DD.")
        if first > last or (last - first).days >= MAX_CUSTOM_DAYS:
            return _fallback(
                now,
                "The first date must come before the last, "
                f"at most {MAX_CUSTOM_DAYS} days apart.",
            )
        try:
            # Whole local days, the last one included.
            start = _local_midnight(first)
            end = _local_midnight(last + datetime.timedelta(1))
        except OverflowError:  # 9999-12-31, or 0001-01-01 east of UTC
            return _fallback(now, "Those dates are too far in the past or future.")
        return Period(key, start, end)
    return _fallback(now, "")


def _fallback(now: datetime.datetime, error: str) -> Period:
    return Period("7d", now - PRESETS["7d"], now, error)


def _local_midnight(day: datetime.date) -> datetime.datetime:
    """The day's start; OverflowError when it has no instant in UTC too, as
    the databases store it (not so for a day after 9999-12-31)."""
    midnight = timezone.make_aware(datetime.datetime.combine(day, datetime.time()))
    midnight.astimezone(datetime.UTC)
    return midnight


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    period = parse_period(request.GET, now)
    total = stats.figures(period.start, period.end, now)
    days = stats.daily_figures(period.start, period.end, now)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "is_admin_page": False,
        "period": period,
        "presets": [("24h", "Last 24 hours"), ("7d", "7 days"), ("30d", "30 days")],
        "totals": _totals(total),
        "charts": _charts(total, days),
        "date_from": request.GET.get("from", ""),
        "date_to": request.GET.get("to", ""),
    }
    return render(request, "oversight/dashboard.html", context)


def _count(v: float) -> str:
    return f"{v:,.1f}".removesuffix(".0")


def _pct(v: float) -> str:
    return f"{v:.0%}"


def _ms(v: float) -> str:
    return f"{v:,.0f} ms"


def _seconds(v: float) -> str:
    return f"{v / 60:.1f} min" if v >= 120 else f"{v:.0f} s"


def _money(v: float) -> str:
    return f"{v:.4f}"


def _score(v: float) -> str:
    return f"{v:.2f}"


def _totals(total: stats.Figures) -> list[tuple[str, str]]:
    rows: list[tuple[str, float | None, Callable[[float], str]]] = [
        ("Conversations", total.conversations, _count),
        ("Resolved by the bot, confirmed", total.confirmed_share, _pct),
        ("Resolved by the bot, assumed", total.assumed_share, _pct),
        ("Escalated", total.escalation_rate, _pct),
        ("LLM latency, median", total.llm_latency_median_ms, _ms),
        ("LLM latency, 95th percentile", total.llm_latency_p95_ms, _ms),
        ("Cost per conversation", total.cost_per_conversation, _money),
        ("Satisfaction, bot only", total.satisfaction_bot_only, _score),
        ("Satisfaction, escalated", total.satisfaction_escalated, _score),
    ]
    return [(label, "n/a" if v is None else fmt(v)) for label, v, fmt in rows]


# Per-day charts: title, figure, how a value reads.
DAILY_CHARTS: list[tuple[str, str, Callable[[float], str]]] = [
    ("Conversations per day", "conversations", _count),
    ("Resolved by the bot, confirmed by the customer", "confirmed_share", _pct),
    ("Resolved by the bot, assumed (no reply in 24 h)", "assumed_share", _pct),
    ("Escalation rate", "escalation_rate", _pct),
    ("Bot first response (median)", "bot_first_response_ms", _ms),
    ("People first response (median)", "people_first_response_s", _seconds),
    ("LLM latency, median", "llm_latency_median_ms", _ms),
    ("LLM latency, 95th percentile", "llm_latency_p95_ms", _ms),
    ("Tokens per conversation", "tokens_per_conversation", _count),
    ("Estimated cost per conversation", "cost_per_conversation", _money),
    ("Satisfaction, bot only (1 to 5)", "satisfaction_bot_only", _score),
    ("Satisfaction, escalated (1 to 5)", "satisfaction_escalated", _score),
]


def _charts(
    total: stats.Figures, days: list[stats.DayFigures]
) -> list[tuple[str, SafeString]]:
    labels = [d.day.strftime("%d %b") for d in days]
    drawn = [
        (
            title,
            charts.column_chart(
                title,
                [
                    (label, getattr(d.figures, name))
                    for label, d in zip(labels, days, strict=True)
                ],
                fmt,
            ),
        )
        for title, name, fmt in DAILY_CHARTS
    ]
    reasons = dict(Escalation.Reason.choices)
    drawn.insert(
        4,
        (
            "Escalation reasons",
            charts.bar_list(
                "Escalation reasons",
                [
                    (str(reasons.get(r, r)), n)
                    for r, n in total.escalation_reasons.items()
                ],
                _count,
            ),
        ),
    )
    drawn.append(
        (
            '"Not helpful" rate per article',
            charts.bar_list(
                "Not helpful rate per article",
                [(a.title, a.rate) for a in total.articles[:15]],
                _pct,
                top=1.0,
            ),
        )
    )
    return drawn


CSV_COLUMNS = [
    "conversations",
    "resolved_confirmed",
    "resolved_assumed",
    "confirmed_share",
    "assumed_share",
    "escalated",
    "escalation_rate",
    "bot_first_response_ms",
    "people_first_response_s",
    "llm_latency_median_ms",
    "llm_latency_p95_ms",
    "tokens",
    "tokens_per_conversation",
    "cost",
    "cost_per_conversation",
    "satisfaction_bot_only",
    "satisfaction_escalated",
]


@staff_member_required
def export_csv(request: HttpRequest) -> HttpResponse:
    """One row a day, then the whole period; empty cells where nothing was measured."""
    now = timezone.now()
    period = parse_period(request.GET, now)
    reasons = [r.value for r in Escalation.Reason]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"support-figures-{timezone.localtime(period.end).date().isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(["day", *CSV_COLUMNS, *(f"escalations_{r}" for r in reasons)])
    rows = [
        (d.day.isoformat(), d.figures)
        for d in stats.daily_figures(period.start, period.end, now)
    ]
    rows.append(("total", stats.figures(period.start, period.end, now)))
    for label, figures in rows:
        writer.writerow(
            [
                label,
                *(_cell(getattr(figures, c)) for c in CSV_COLUMNS),
                *(figures.escalation_reasons.get(r, 0) for r in reasons),
            ]
        )
    return response


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"
