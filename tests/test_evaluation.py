"""The evaluation's metrics on sets small enough to check by hand, and the
`evaluate_bot` command end to end on a tiny CLINC150-style file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from support_bot.bot.retrieval import ArticleDoc, ArticleIndex
from support_bot.evaluation import (
    Outcomes,
    decide,
    metrics,
    reliability,
    sweep,
    threshold_for_in_scope_share,
)


def outcomes(
    rows: Sequence[tuple[int | None, int | None, float]], forced: int = 0
) -> Outcomes:
    """(expected, predicted, confidence) rows; the first `forced` rows asked
    for a person."""
    return Outcomes(
        [e for e, _, _ in rows],
        [p for _, p, _ in rows],
        np.array([c for _, _, c in rows]),
        np.arange(len(rows)) < forced,
    )


# Four questions to answer (three routed right) and two to escalate.
MIXED = [
    (1, 1, 0.9),
    (2, 2, 0.8),
    (3, 3, 0.3),
    (4, 1, 0.6),
    (None, 2, 0.2),
    (None, 3, 0.7),
]


def test_routing_accuracy_ignores_the_threshold() -> None:
    assert metrics(outcomes(MIXED), 0.5).routing_accuracy == 0.75
    assert metrics(outcomes(MIXED), 0.95).routing_accuracy == 0.75


def test_answered_right_counts_only_right_articles_above_the_threshold() -> None:
    result = metrics(outcomes(MIXED), 0.5)
    # Right and answered: questions 1 and 2; question 3 is right but escalated.
    assert result.answered_right == 0.5
    assert result.in_scope_escalated == 0.25


def test_escalation_precision_and_recall() -> None:
    result = metrics(outcomes(MIXED), 0.5)
    # Escalated: question 3 (in scope) and the first out-of-scope one.
    assert result.escalation_precision == 0.5
    assert result.escalation_recall == 0.5
    assert (result.in_scope, result.out_of_scope) == (4, 2)


def test_a_request_for_a_person_escalates_whatever_the_confidence() -> None:
    result = metrics(outcomes(MIXED, forced=1), 0.5)
    assert result.in_scope_escalated == 0.5
    assert result.answered_right == 0.25


def test_sweep_trades_answers_for_escalations_monotonically() -> None:
    rows = sweep(outcomes(MIXED), (0.0, 0.25, 0.5, 0.75, 1.0))
    assert [r.threshold for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [r.escalation_recall for r in rows] == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert [r.answered_right for r in rows] == [0.75, 0.75, 0.5, 0.5, 0.0]


def test_threshold_leaves_the_asked_share_of_in_scope_questions_under_it() -> None:
    rows = [(1, 1, c / 100) for c in range(1, 101)] + [(None, 1, 0.99)]
    threshold = threshold_for_in_scope_share(outcomes(rows), 0.10)
    assert 0.10 < threshold < 0.11
    assert metrics(outcomes(rows), threshold).in_scope_escalated == 0.10


def test_reliability_bins_compare_confidence_with_the_share_right() -> None:
    rows = [(1, 1, 0.95), (1, 2, 0.95), (1, 1, 0.15), (None, 1, 0.15)]
    curve = reliability(outcomes(rows), bins=10)
    assert curve.count.tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert curve.accuracy[9] == 0.5
    assert curve.accuracy[1] == 0.5
    assert curve.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)


DOCS = [
    ArticleDoc(1, "Change your PIN", "", ("how do I change my PIN",)),
    ArticleDoc(2, "Card delivery", "", ("when will my card arrive",)),
]


def test_decide_escalates_a_request_for_a_person_and_answers_small_talk() -> None:
    index = ArticleIndex.build(DOCS)
    assert decide(index, "I want to speak to a human", 0.0).action == "escalate"
    assert decide(index, "thanks!", 0.99).action == "answer"
    confident = decide(index, "how can I change my PIN?", 0.0)
    assert (confident.action, confident.article_id) == ("answer", 1)
    assert decide(index, "how can I change my PIN?", 1.01).action == "escalate"


def tiny_clinc150(path: Path) -> Path:
    questions = {
        "change_pin": ["how do I change my pin", "I want a new pin", "reset my pin"],
        "card_arrival": ["where is my card", "my card has not arrived", "card late"],
        "weather": ["will it rain today", "what's the forecast", "is it sunny"],
    }
    data = {
        "train": [[q, i] for i, qs in questions.items() for q in qs],
        "val": [["can I change my pin", "change_pin"], ["rain tomorrow?", "weather"]],
        "oos_val": [["tell me a joke", "oos"]],
        "test": [
            ["pin change please", "change_pin"],
            ["is my card coming", "card_arrival"],
        ],
        "oos_test": [["who won the game", "oos"]],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_command_reports_metrics_and_writes_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "calibration.png"
    call_command(
        "evaluate_bot",
        "--clinc150",
        str(tiny_clinc150(tmp_path / "data_full.json")),
        "--plot",
        str(plot),
    )
    out = capsys.readouterr().out
    assert "Threshold chosen on 3 validation questions" in out
    assert "2 questions to answer, 1 to escalate" in out
    assert "routing accuracy" in out and "escalation precision" in out
    assert "threshold  answered right" in out
    assert plot.read_bytes().startswith(b"\x89PNG")
