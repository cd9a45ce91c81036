"""Every dashboard figure, computed from a scripted set of conversations whose
right answers were worked out by hand."""

import datetime
from typing import Any

import pytest

from oversight import stats
from tests.scripted import Script, agent, bot, customer, store

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
DEC_1 = datetime.datetime(2026, 12, 1, tzinfo=UTC)
DEC_2 = DEC_1 + datetime.timedelta(days=1)
DEC_3 = DEC_1 + datetime.timedelta(days=2)
NOW = DEC_3 + datetime.timedelta(hours=12)
CARDS = {"id": 1, "title": "Card delivery"}
PINS = {"id": 2, "title": "Changing your PIN"}
GPT = {"model": "gpt-4o-mini"}


def at(day: datetime.datetime, hour: int) -> datetime.datetime:
    return day + datetime.timedelta(hours=hour)


@pytest.fixture
def scripted(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    settings.LLM_PRICE_PROMPT_PER_1K = 0.5
    settings.LLM_PRICE_COMPLETION_PER_1K = 1.5
    # Anna: a model answer she liked and rated 5. Resolved, confirmed.
    store(
        Script(
            at(DEC_1, 10),
            [
                customer(0),
                bot(
                    1,
                    **GPT,
                    latency_ms=1000,
                    first_delta_ms=200,
                    prompt_tokens=100,
                    completion_tokens=50,
                    sources=[CARDS],
                    feedback="up",
                ),
            ],
            rating=5,
        )
    )
    # Ben: an offline answer he called not helpful, then silence for days.
    # Resolved, assumed.
    store(
        Script(
            at(DEC_1, 11),
            [
                customer(0),
                bot(
                    1,
                    model="offline",
                    latency_ms=40,
                    first_delta_ms=10,
                    sources=[CARDS],
                    feedback="down",
                ),
            ],
        )
    )
    # Cleo: the model timed out; a person answered 5 minutes after the
    # escalation. She rated 2.
    store(
        Script(
            at(DEC_1, 12),
            [
                customer(0),
                bot(1, latency_ms=3000, interrupted=True, error="timeout"),
                agent(6),
            ],
            escalations=[("llm_error", 1)],
            rating=2,
        )
    )
    # Dev: replied "hello?" to the answer and got nothing back: not resolved.
    store(
        Script(
            at(DEC_1, 13),
            [
                customer(0),
                bot(1, model="offline", latency_ms=30, first_delta_ms=20),
                customer(5, "hello?"),
            ],
        )
    )
    # Eve: an answer, then she asked for a person, who replied 2 minutes later.
    store(
        Script(
            at(DEC_2, 9),
            [
                customer(0),
                bot(
                    1,
                    **GPT,
                    latency_ms=2000,
                    first_delta_ms=400,
                    prompt_tokens=200,
                    completion_tokens=100,
                    sources=[PINS],
                ),
                agent(3),
            ],
            escalations=[("customer_request", 1)],
            rating=4,
        )
    )
    # Finn: a late answer rated not helpful; too recent to assume anything.
    store(
        Script(
            at(DEC_2, 23),
            [
                customer(0),
                bot(
                    1,
                    **GPT,
                    latency_ms=500,
                    first_delta_ms=100,
                    prompt_tokens=50,
                    completion_tokens=50,
                    sources=[CARDS, PINS],
                    feedback="down",
                ),
            ],
        )
    )
    # Outside the period on both sides.
    store(Script(at(DEC_1, -1), [customer(0)], escalations=[("no_answer", 0)]))
    store(Script(at(DEC_3, 1), [customer(0)], escalations=[("no_answer", 0)]))


def test_figures_of_the_period_match_the_worked_answers(scripted: None) -> None:
    figures = stats.figures(DEC_1, DEC_3, NOW)

    assert figures.conversations == 6
    assert (figures.resolved_confirmed, figures.confirmed_share) == (1, 1 / 6)
    assert (figures.resolved_assumed, figures.assumed_share) == (1, 1 / 6)
    assert (figures.escalated, figures.escalation_rate) == (2, 2 / 6)
    assert figures.escalation_reasons == {"llm_error": 1, "customer_request": 1}
    # First answers: 10, 20, 100, 200, 400, 3000 ms.
    assert figures.bot_first_response_ms == 150.0
    # Cleo waited 300 s, Eve 120 s.
    assert figures.people_first_response_s == 210.0
    # Model answers only (not offline, not the failure): 500, 1000, 2000.
    assert figures.llm_latency_median_ms == 1000.0
    assert figures.llm_latency_p95_ms == 2000.0
    assert figures.tokens == 550
    assert figures.tokens_per_conversation == 550 / 6
    # 350 prompt tokens at 0.5 and 200 completion tokens at 1.5 per 1,000.
    assert figures.cost == pytest.approx(0.475, abs=1e-12)
    assert figures.cost_per_conversation == pytest.approx(0.475 / 6, abs=1e-12)
    assert figures.satisfaction_bot_only == 5.0
    assert figures.satisfaction_escalated == 3.0


def test_not_helpful_rate_counts_every_answer_citing_the_article(
    scripted: None,
) -> None:
    articles = stats.figures(DEC_1, DEC_3, NOW).articles

    assert [(a.id, a.title, a.answers, a.not_helpful) for a in articles] == [
        (1, "Card delivery", 3, 2),
        (2, "Changing your PIN", 2, 1),
    ]
    assert [a.rate for a in articles] == [2 / 3, 1 / 2]


def test_each_day_counts_the_conversations_started_on_it(scripted: None) -> None:
    days = stats.daily_figures(DEC_1, DEC_3, NOW)

    assert [d.day for d in days] == [DEC_1.date(), DEC_2.date()]
    first, second = (d.figures for d in days)
    assert (first.conversations, first.resolved_confirmed) == (4, 1)
    assert (first.resolved_assumed, first.escalated) == (1, 1)
    assert first.people_first_response_s == 300.0
    assert (second.conversations, second.escalated) == (2, 1)
    assert second.llm_latency_p95_ms == 2000.0
    assert second.satisfaction_escalated == 4.0
    assert second.tokens == 400


def test_an_answer_becomes_assumed_only_after_a_quiet_day(scripted: None) -> None:
    a_day_after_finn = at(DEC_3, 24)

    assert stats.figures(DEC_1, DEC_3, a_day_after_finn).resolved_assumed == 2


def test_an_empty_period_has_counts_and_no_rates() -> None:
    figures = stats.figures(DEC_1, DEC_3, NOW)

    assert figures.conversations == 0
    assert figures.escalation_rate is None
    assert figures.llm_latency_p95_ms is None
    assert figures.articles == []
