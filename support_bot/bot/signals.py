"""Confidence signals, and the decision they add up to.

Each signal is independent and stored on the bot's message, so a person can
see why the bot answered or handed over. Signals known before the answer
(retrieval support, what the customer said) decide whether to answer at all;
signals known after it (grounding, the model's own hand-off) can still
withdraw it.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .embeddings import embed
from .retrieval import Hit

# Phrases of a customer asking for a person.
_ASKS_FOR_PERSON = re.compile(
    r"(?ix)\b("
    r"(speak|talk|chat)\s+(to|with)\s+(a\s+|an\s+|some|the\s+)?"
    r"(human|person|agent|someone|somebody|representative|staff|operator|manager)"
    r"|real\s+(person|human)|human\s+(agent|being|please)"
    r"|(get|want|need)\s+(me\s+)?(a\s+)?(human|person|agent|representative)"
    r"|customer\s+(service|support)\s+(agent|person|representative)"
    r")\b"
)
_FRUSTRATION = re.compile(
    r"(?ix)\b("
    r"useless|ridiculous|terrible|awful|unacceptable|fed\s+up|sick\s+of|"
    r"waste\s+of\s+time|not\s+helpful|doesn'?t\s+help|didn'?t\s+help|"
    r"you\s+(don'?t|do\s+not)\s+understand|stupid|angry|furious|annoyed"
    r")\b|!{3,}"
)
_SMALL_TALK = {
    "greeting": re.compile(
        r"(?i)^\s*(hi|hello|hey|good\s+(morning|afternoon|evening))\b[\s!.,]*$"
    ),
    "thanks": re.compile(
        r"(?i)^\s*(thanks?|thank\s+you|cheers|ta|great,?\s+thanks?)\b.{0,20}$"
    ),
    "goodbye": re.compile(r"(?i)^\s*(bye|goodbye|see\s+you|that'?s\s+all)\b.{0,20}$"),
}
SMALL_TALK_REPLIES = {
    "greeting": "Hello! What can I help you with today?",
    "thanks": "You're welcome! Is there anything else I can help with?",
    "goodbye": "Thanks for chatting. Goodbye!",
}


def small_talk(text: str) -> str | None:
    """The kind of social message this is, if that is all it is."""
    return next((k for k, p in _SMALL_TALK.items() if p.match(text)), None)


def asks_for_person(text: str) -> bool:
    return bool(_ASKS_FOR_PERSON.search(text))


def frustrated(text: str) -> bool:
    if _FRUSTRATION.search(text):
        return True
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.7


def repeated(question: str, previous: str | None) -> bool:
    """The customer asked the same thing again: the last answer did not help."""
    if not previous:
        return False
    vectors = embed([question, previous])
    return bool(float(vectors[0] @ vectors[1]) >= 0.92)


def always_human_topic(question: str, topics: Sequence[str]) -> str | None:
    """The always-hand-to-a-person guideline this question falls under, if any.

    A topic matches when the question is close to it in meaning, or shares
    one of its key words ("identity" in "identity theft"). The bar is low on
    purpose: a wrong match only costs a hand-over.
    """
    if not topics:
        return None
    asked = _stems(question)
    for topic in topics:
        if asked & _stems(topic):
            return topic
    vectors = embed([question, *topics])
    scores = vectors[1:] @ vectors[0]
    best = int(np.argmax(scores))
    return topics[best] if float(scores[best]) >= 0.45 else None


_COMMON = {
    "about",
    "always",
    "anything",
    "customer",
    "customers",
    "other",
    "their",
    "there",
    "these",
    "those",
    "which",
    "would",
    "could",
    "should",
    "questions",
    "question",
    "person",
    "people",
    "please",
    "where",
    "when",
    "what",
    "with",
}


def _stems(text: str) -> set[str]:
    """Key words of `text`, cut to five letters so "stole" meets "stolen"."""
    words = re.findall(r"[a-z]+", text.lower())
    return {w[:5] for w in words if len(w) >= 5 and w not in _COMMON}


def retrieval_confidence(hits: Sequence[Hit]) -> float:
    """How likely the best article is the right one, from its score and margin.

    A logistic of the best similarity and its lead over the runner-up; the
    constants come from the BANKING77 and CLINC150 development sets
    (scripts/tune_retrieval.py).
    """
    if not hits:
        return 0.0
    calibrated = getattr(hits[0], "confidence", None)
    if isinstance(calibrated, float):
        return calibrated
    best = hits[0].score
    margin = best - hits[1].score if len(hits) > 1 else best
    return 1 / (1 + math.exp(-(14.0 * (best - 0.5) + 6.0 * margin)))


@dataclass
class Signals:
    retrieval_best: float = 0.0
    retrieval_margin: float = 0.0
    retrieval_confidence: float = 0.0
    asks_for_person: bool = False
    frustrated: bool = False
    repeated: bool = False
    always_human: str | None = None
    grounded: bool | None = None
    model_handoff: str | None = None
    logprob_confidence: float | None = None
    self_check: float | None = None
    violations: list[str] = field(default_factory=list)

    def before_answer(self) -> float:
        """Confidence from what is known before the model speaks."""
        confidence = self.retrieval_confidence
        # A customer who is frustrated or repeating themselves was not helped
        # by answers like the last one: lean towards a person.
        if self.frustrated:
            confidence *= 0.7
        if self.repeated:
            confidence *= 0.6
        return confidence

    def after_answer(self) -> float:
        confidence = self.before_answer()
        if self.grounded is False:
            confidence *= 0.5
        if self.logprob_confidence is not None:
            confidence *= 0.5 + 0.5 * self.logprob_confidence
        if self.self_check is not None:
            confidence *= self.self_check
        if self.model_handoff is not None:
            confidence = 0.0
        return confidence

    def as_dict(self) -> dict[str, float | bool | str | list[str] | None]:
        return {
            "retrieval_best": round(self.retrieval_best, 4),
            "retrieval_margin": round(self.retrieval_margin, 4),
            "retrieval_confidence": round(self.retrieval_confidence, 4),
            "asks_for_person": self.asks_for_person,
            "frustrated": self.frustrated,
            "repeated": self.repeated,
            "always_human": self.always_human,
            "grounded": self.grounded,
            "model_handoff": self.model_handoff,
            "logprob_confidence": self.logprob_confidence,
            "self_check": self.self_check,
            "violations": self.violations,
        }


def measure_before(
    question: str,
    previous: str | None,
    hits: Sequence[Hit],
    always_human_topics: Sequence[str],
) -> Signals:
    best = hits[0].score if hits else 0.0
    return Signals(
        retrieval_best=best,
        retrieval_margin=best - hits[1].score if len(hits) > 1 else best,
        retrieval_confidence=retrieval_confidence(hits),
        asks_for_person=asks_for_person(question),
        frustrated=frustrated(question),
        repeated=repeated(question, previous),
        always_human=always_human_topic(question, always_human_topics),
    )
