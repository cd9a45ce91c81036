"""Measure the bot's routing and its decision to hand over, on labelled sets.

A labelled question either names the article that answers it or expects the
bot to escalate. Each question goes through retrieval and the part of the
decision that comes before the model speaks (`decide`): the same signals and
threshold the live chat uses, without a database or a model. What the model
adds afterwards (grounding, its own hand-off, guardrails) can only withdraw
answers, so these numbers bound the live bot's answers from above.

The sets are built from public data in ``../shared/data``: BANKING77
(Casanueva et al., 2020, CC BY 4.0) and CLINC150 (Larson et al., 2019,
CC BY 3.0). Loading them needs no Django.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from support_bot.bot.retrieval import ArticleDoc, ArticleIndex, Hit
from support_bot.bot.signals import measure_before, small_talk

# CLINC150 domains a bank's assistant should answer; every other domain
# (travel, cooking, small talk, ...) should be handed over in the bank set.
BANK_DOMAINS = ("banking", "credit_cards")
# Thresholds of the sweep table.
SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))
# Bins of the reliability plot.
BINS = 10

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Example:
    question: str
    # The article that answers it, or None when the bot should escalate.
    expected: int | None


@dataclass(frozen=True)
class Decision:
    action: Literal["answer", "escalate"]
    # The best article (None when nothing was retrieved or for small talk).
    article_id: int | None
    confidence: float
    reason: str


@dataclass(frozen=True)
class LabelledSet:
    name: str
    docs: list[ArticleDoc]
    # Used to choose the threshold (None: use the configured one).
    tune: list[Example] | None
    report: list[Example]
    note: str = ""


def decide_hits(question: str, hits: Sequence[Hit], threshold: float) -> Decision:
    """The pre-model decision for `question` given its retrieval hits.

    Mirrors `support_bot.bot.decision.decide` up to the model call: a request
    for a person escalates, small talk is answered without an article, and
    otherwise the bot answers only when the confidence before answering
    reaches `threshold`.
    """
    article = hits[0].article_id if hits else None
    signals = measure_before(question, None, hits, ())
    confidence = signals.before_answer()
    if signals.asks_for_person:
        return Decision("escalate", article, confidence, "asked for a person")
    if small_talk(question) is not None:
        return Decision("answer", None, 1.0, "small talk")
    if confidence < threshold:
        return Decision("escalate", article, confidence, "below the threshold")
    return Decision("answer", article, confidence, "confident")


def decide(index: ArticleIndex, question: str, threshold: float) -> Decision:
    """What the bot would do with `question` against `index` (no context)."""
    return decide_hits(question, index.search(question, k=3), threshold)


@dataclass(frozen=True)
class Outcomes:
    """Per question: what was expected, the best article, the confidence."""

    expected: list[int | None]
    predicted: list[int | None]
    confidence: FloatArray
    # Escalated whatever the threshold (a request for a person).
    forced: npt.NDArray[np.bool_]

    @property
    def in_scope(self) -> npt.NDArray[np.bool_]:
        return np.array([e is not None for e in self.expected], dtype=bool)

    @property
    def right(self) -> npt.NDArray[np.bool_]:
        """The best article is the expected one (never for out-of-scope)."""
        return np.array(
            [
                e is not None and e == p
                for e, p in zip(self.expected, self.predicted, strict=True)
            ],
            dtype=bool,
        )

    def escalated(self, threshold: float) -> npt.NDArray[np.bool_]:
        escalated: npt.NDArray[np.bool_] = self.forced | (self.confidence < threshold)
        return escalated


def run(index: ArticleIndex, examples: Sequence[Example]) -> Outcomes:
    """Every example through retrieval and the pre-model decision signals.

    Retrieval runs in one batch (`ArticleIndex.rank`); the decision's own
    signals run per question, as in the live path.
    """
    ranking = index.rank([e.question for e in examples])
    predicted: list[int | None] = []
    confidence = np.zeros(len(examples))
    forced = np.zeros(len(examples), dtype=bool)
    for row, example in enumerate(examples):
        # Threshold 0: the confidence is what is recorded; the threshold is
        # applied afterwards, so one run serves the whole sweep.
        decision = decide_hits(example.question, index.hits(ranking, row, 3), 0.0)
        predicted.append(decision.article_id)
        confidence[row] = decision.confidence
        forced[row] = decision.action == "escalate"
    return Outcomes([e.expected for e in examples], predicted, confidence, forced)


@dataclass(frozen=True)
class Metrics:
    threshold: float
    # Share of in-scope questions whose best article is the expected one.
    routing_accuracy: float
    # Share of in-scope questions answered, with the expected article.
    answered_right: float
    # Share of in-scope questions escalated.
    in_scope_escalated: float
    # Of the escalated questions, the share that should have been.
    escalation_precision: float
    # Of the questions that should be escalated, the share that were.
    escalation_recall: float
    in_scope: int
    out_of_scope: int


def _share(numerator: int, denominator: int) -> float:
    # An empty denominator has nothing to get wrong.
    return numerator / denominator if denominator else 1.0


def metrics(outcomes: Outcomes, threshold: float) -> Metrics:
    in_scope = outcomes.in_scope
    escalated = outcomes.escalated(threshold)
    right = outcomes.right
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    return Metrics(
        threshold=threshold,
        routing_accuracy=_share(int((right & in_scope).sum()), n_in),
        answered_right=_share(int((right & ~escalated).sum()), n_in),
        in_scope_escalated=_share(int((escalated & in_scope).sum()), n_in),
        escalation_precision=_share(
            int((escalated & ~in_scope).sum()), int(escalated.sum())
        ),
        escalation_recall=_share(int((escalated & ~in_scope).sum()), n_out),
        in_scope=n_in,
        out_of_scope=n_out,
    )


def sweep(outcomes: Outcomes, thresholds: Sequence[float] = SWEEP) -> list[Metrics]:
    return [metrics(outcomes, t) for t in thresholds]


def threshold_for_in_scope_share(outcomes: Outcomes, share: float = 0.10) -> float:
    """The threshold that escalates `share` of the in-scope questions: the
    CLINC150 protocol, applied to the validation split."""
    confidence = outcomes.confidence[outcomes.in_scope & ~outcomes.forced]
    return float(np.quantile(confidence, share)) if len(confidence) else 0.5


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: mean confidence, share right, count."""

    confidence: FloatArray
    accuracy: FloatArray
    count: npt.NDArray[np.int64]
    # Expected calibration error: the count-weighted gap between the two.
    ece: float


def reliability(outcomes: Outcomes, bins: int = BINS) -> Reliability:
    """How often the best article is right, by confidence. An out-of-scope
    question is never right, so a good confidence is low for it."""
    right = outcomes.right.astype(float)
    which = np.minimum((outcomes.confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    mean_conf = np.bincount(which, outcomes.confidence, bins) / safe
    accuracy = np.bincount(which, right, bins) / safe
    total = max(1, len(right))
    ece = float(np.sum(count / total * np.abs(mean_conf - accuracy)))
    return Reliability(mean_conf, accuracy, count.astype(np.int64), ece)


# --- Loading the sets --------------------------------------------------------


def humanise(intent: str) -> str:
    """An intent label as an article title: "card_arrival" -> "card arrival"."""
    return intent.replace("_", " ").strip()


def intent_docs(
    pairs: Sequence[tuple[str, str]],
) -> tuple[list[ArticleDoc], dict[str, int]]:
    """One article per intent, its questions as examples, ids in name order."""
    intents = sorted({intent for _, intent in pairs})
    ids = {intent: i + 1 for i, intent in enumerate(intents)}
    questions: dict[str, list[str]] = {intent: [] for intent in intents}
    for text, intent in pairs:
        questions[intent].append(text)
    docs = [ArticleDoc(ids[i], humanise(i), "", tuple(questions[i])) for i in intents]
    return docs, ids


def read_csv(path: Path, label: str | None = None) -> list[tuple[str, str]]:
    """(text, intent) rows of a BANKING77-style CSV: text plus `category` or
    `intent` (or `label`) column."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        column = label or next((c for c in ("category", "intent") if c in fields), None)
        if "text" not in fields or column is None:
            raise ValueError(f"{path}: needs a text column and a category column")
        return [(row["text"], row[column]) for row in reader]


def _examples(pairs: Sequence[tuple[str, str]], ids: dict[str, int]) -> list[Example]:
    unknown = sorted({i for _, i in pairs if i not in ids})
    if unknown:
        raise ValueError(f"intents with no article: {', '.join(unknown[:5])}")
    return [Example(text, ids[intent]) for text, intent in pairs]


def _escalations(texts: Sequence[str]) -> list[Example]:
    return [Example(text, None) for text in texts]


def bank_set(repo: Path, clinc_dir: Path) -> LabelledSet:
    """The demo knowledge base against held-out BANKING77 questions, with
    CLINC150 out-of-scope and other-domain questions to escalate."""
    kb = json.loads((repo / "knowledge/demo/bank_kb.json").read_text("utf-8"))
    docs = [
        ArticleDoc(i + 1, a["title"], a["body"], tuple(a["example_questions"]))
        for i, a in enumerate(kb)
    ]
    ids = {a["intent"]: i + 1 for i, a in enumerate(kb)}
    held_out = read_csv(repo / "eval/banking77_heldout.csv")
    splits = json.loads((clinc_dir / "data_train_val.json").read_text("utf-8"))
    domains = json.loads((clinc_dir / "domains.json").read_text("utf-8"))
    domain_of = {i: d for d, intents in domains.items() for i in intents}
    off_domain = [t for t, i in splits["val"] if domain_of[i] not in BANK_DOMAINS]
    oos = [t for t, _ in splits["oos_val"]]
    return LabelledSet(
        "bank",
        docs,
        None,
        _examples(held_out, ids) + _escalations(oos + off_domain),
        note=(
            f"{len(held_out)} BANKING77 held-out questions to answer; "
            f"{len(oos)} CLINC150 oos_val and {len(off_domain)} CLINC150 val "
            "questions outside banking and credit cards to escalate"
        ),
    )


def clinc150_set(path: Path) -> LabelledSet:
    """CLINC150's protocol: train as articles, threshold from val + oos_val,
    report on test + oos_test (or on val when the file has no test split)."""
    splits = json.loads(path.read_text("utf-8"))
    docs, ids = intent_docs([(t, i) for t, i in splits["train"]])

    def part(in_scope: str, oos: str) -> list[Example]:
        return _examples(splits[in_scope], ids) + _escalations(
            [t for t, _ in splits.get(oos, [])]
        )

    tune = part("val", "oos_val")
    if "test" in splits:
        return LabelledSet("clinc150", docs, tune, part("test", "oos_test"))
    return LabelledSet(
        "clinc150",
        docs,
        tune,
        tune,
        note="no test split in this file: reported on val, where the threshold "
        "was chosen (optimistic)",
    )


def banking77_set(train: Path, test: Path) -> LabelledSet:
    """All of BANKING77's train as articles, a test CSV to route."""
    docs, ids = intent_docs(read_csv(train))
    return LabelledSet("banking77", docs, None, _examples(read_csv(test), ids))


# --- Reporting ---------------------------------------------------------------


def format_metrics(m: Metrics) -> str:
    text = (
        f"threshold {m.threshold:.3f}: routing accuracy {m.routing_accuracy:.1%}, "
        f"answered right {m.answered_right:.1%}, in scope escalated "
        f"{m.in_scope_escalated:.1%}"
    )
    # Escalation precision and recall mean nothing without questions that
    # should be escalated.
    if m.out_of_scope:
        text += (
            f", escalation precision {m.escalation_precision:.1%}, "
            f"recall {m.escalation_recall:.1%}"
        )
    return text


def format_sweep(rows: Sequence[Metrics]) -> str:
    lines = [
        "threshold  answered right  in scope escalated  esc. precision  esc. recall"
    ]
    lines += [
        f"{m.threshold:9.2f} {m.answered_right:15.1%} {m.in_scope_escalated:19.1%}"
        f" {m.escalation_precision:15.1%} {m.escalation_recall:12.1%}"
        for m in rows
    ]
    return "\n".join(lines)


def write_reliability_plot(path: Path, curves: dict[str, Reliability]) -> None:
    """A reliability diagram (share right against confidence, per bin) as PNG.

    Raises ImportError when matplotlib (the `dev` extra) is not installed.
    """
    import matplotlib

    # No display on servers and in tests; Agg only writes files.
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=100)
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", label="perfect")
    for name, curve in curves.items():
        used = curve.count > 0
        ax.plot(
            curve.confidence[used],
            curve.accuracy[used],
            marker="o",
            label=f"{name} (ECE {curve.ece:.3f})",
        )
    ax.set_xlabel("confidence of the best article")
    ax.set_ylabel("share where it is the right answer")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
