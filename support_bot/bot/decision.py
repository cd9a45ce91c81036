"""Whether the bot answers, and with what: the whole decision for one question.

No database and no sockets here: the caller passes what it loaded and a
callback for streamed text, so the live chat, "Try the bot" in admin and the
evaluation all run the same path.

The order is fixed. A customer asking for a person, or a topic a guideline
gives to people, is handed over at once. Small talk gets a short reply.
Otherwise the bot answers only when retrieval supports it well enough; after
the model has spoken, the answer is withdrawn if it cites nothing it was
given, if the model itself asked for a hand-off, or if a guardrail fails.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from support_bot.privacy import AnswerStream, redact_answer

from .engine import (
    BotEngine,
    BotRequest,
    Completed,
    EngineError,
    RetrievedArticle,
    TextDelta,
)
from .guardrails import check_answer
from .retrieval import ArticleDoc, Hit
from .signals import SMALL_TALK_REPLIES, Signals, small_talk

ASKED_FOR_PERSON = (
    "Of course. I've asked a person from our support team to join; they'll "
    "reply right here."
)
PEOPLE_TOPIC = (
    "That's something a person from our support team should handle, so I've "
    "asked one to join. They'll reply right here."
)
NOT_SURE = (
    "I'm sorry, I don't have an answer to that in our help articles, so I've "
    "asked a person from our support team to take over. They'll reply here."
)
# When an article may fit but the confidence is too low (a vague question, or
# one the customer repeats, frustrated): "no article" would be untrue.
UNSURE_OF_ARTICLE = (
    "I'm not sure I can answer that correctly, so I've asked a person from "
    "our support team to take over. They'll reply here."
)
HELD = (
    "A person from our support team is checking the answer before it's sent "
    "to you. It won't be long."
)
WITHDRAWN = (
    "I'm sorry, I can't answer that reliably, so I've asked a person from our "
    "support team to take over. They'll reply right here."
)

Decision = Literal["answer", "escalate", "withdraw", "hold"]
# autopilot: answers go out; supervised: answers the bot is unsure of wait for
# a person's approval instead of being withdrawn; copilot: every answer does.
ReviewMode = Literal["autopilot", "supervised", "copilot"]
OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Guidelines:
    """The published guidelines, by kind."""

    prompt: tuple[str, ...] = ()
    always_human: tuple[str, ...] = ()
    never_do: tuple[str, ...] = ()


@dataclass
class Outcome:
    text: str
    decision: Decision
    reasons: list[str]
    # An Escalation.Reason value when the conversation goes to people.
    escalate: str | None
    signals: Signals
    confidence: float
    articles: list[RetrievedArticle]
    completed: Completed | None = None
    # The model's text when it was withdrawn: kept for the agent.
    withdrawn_text: str | None = None
    hits: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class Question:
    text: str
    previous: str | None
    request: BotRequest
    hits: list[Hit]
    docs: dict[int, ArticleDoc]
    # What is known before the model is asked (see signals.measure_before).
    signals: Signals


def articles_for(
    question: Question, *, threshold: float, min_score: float
) -> list[RetrievedArticle]:
    """The retrieved articles the model answers from.

    The best article always goes to the model when routing is confident in
    it (a follow-up can route well on a low raw similarity); the others only
    when they are close enough on their own.
    """
    return [
        RetrievedArticle(
            h.article_id, h.title, question.docs[h.article_id].body, h.score
        )
        for rank, h in enumerate(question.hits)
        if h.score >= min_score or (rank == 0 and h.confidence >= threshold)
    ]


async def decide(
    question: Question,
    engine: BotEngine,
    *,
    threshold: float,
    min_score: float,
    guidelines: Guidelines,
    allowed_hosts: Sequence[str],
    on_delta: OnDelta | None = None,
    review: ReviewMode = "autopilot",
) -> Outcome:
    """Decide and, when answering, stream the answer through `on_delta`.

    With review, an answer a person must approve comes back as "hold"; the
    caller streams nothing to the customer for it (copilot) or replaces what
    was streamed (supervised). Raises EngineError when the model fails; the
    caller apologises.
    """
    hits = question.hits
    articles = articles_for(question, threshold=threshold, min_score=min_score)
    signals = question.signals
    before = signals.before_answer()

    def handover(text: str, reason: str, why: str) -> Outcome:
        return Outcome(
            text, "escalate", [why], reason, signals, before, articles, hits=hits
        )

    if signals.asks_for_person:
        return handover(
            ASKED_FOR_PERSON, "customer_request", "the customer asked for a person"
        )
    if signals.always_human:
        return handover(
            PEOPLE_TOPIC,
            "guideline",
            f"a guideline gives this topic to people: {signals.always_human}",
        )
    kind = small_talk(question.text)
    if kind is not None:
        return Outcome(
            SMALL_TALK_REPLIES[kind],
            "answer",
            [f"small talk ({kind})"],
            None,
            signals,
            1.0,
            [],
            hits=hits,
        )
    if before < threshold and review == "autopilot":
        reason = "no_answer" if not articles else "low_confidence"
        return handover(
            NOT_SURE if not articles else UNSURE_OF_ARTICLE,
            reason,
            f"confidence {before:.2f} is below the threshold {threshold:.2f}",
        )

    request = question.request
    request = BotRequest(
        question=request.question,
        history=request.history,
        summary=request.summary,
        articles=articles,
        bot_name=request.bot_name,
        guidelines=guidelines.prompt,
    )
    # A draft for a person is never streamed to the customer.
    stream = (
        on_delta
        if review == "autopilot" or (review == "supervised" and before >= threshold)
        else None
    )
    completed = await _stream_answer(engine, request, stream)
    if completed.handoff is None and completed.text:
        # The request's question, which is redacted, never the raw text.
        signals.self_check = await engine.self_check(
            request.question, completed.text, articles
        )
    outcome = _after(
        completed, signals, threshold, articles, guidelines, allowed_hosts, hits
    )
    if review == "copilot" or (review == "supervised" and outcome.decision != "answer"):
        outcome.decision = "hold"
        outcome.text = HELD
        outcome.escalate = "review"
        outcome.reasons.append(f"{review} mode: a person approves this answer")
    return outcome


async def _stream_answer(
    engine: BotEngine, request: BotRequest, on_delta: OnDelta | None
) -> Completed:
    """The model's answer, redacted as it streams and once complete.

    What the answer shows and stores (and what a withdrawn or held answer
    keeps for the agent) never carries a full card number or IBAN.
    """
    stated = " ".join(a.body for a in request.articles)
    redacting = AnswerStream(stated)
    completed: Completed | None = None
    try:
        async for event in engine.stream(request):
            if isinstance(event, TextDelta):
                if on_delta is not None and (shown := redacting.add(event.text)):
                    await on_delta(shown)
            else:
                completed = event
    except EngineError:
        # What was written before the failure is kept for the agent.
        if on_delta is not None and (rest := redacting.finish()):
            await on_delta(rest)
        raise
    if completed is None:
        raise EngineError("stream_cut", "the engine ended without an answer")
    if on_delta is not None and (rest := redacting.finish()):
        await on_delta(rest)
    return replace(completed, text=redact_answer(completed.text, stated))


def _after(
    completed: Completed,
    signals: Signals,
    threshold: float,
    articles: list[RetrievedArticle],
    guidelines: Guidelines,
    allowed_hosts: Sequence[str],
    hits: list[Hit],
) -> Outcome:
    cited = {a.id for a in articles} & set(completed.sources)
    signals.grounded = bool(cited)
    signals.model_handoff = completed.handoff
    signals.logprob_confidence = completed.logprob_confidence
    violations = check_answer(
        completed.text,
        articles,
        never_do=guidelines.never_do,
        allowed_hosts=allowed_hosts,
    )
    signals.violations = [f"{v.check}: {v.detail}" for v in violations]
    after = signals.after_answer()

    def withdraw(reason: str, why: list[str]) -> Outcome:
        return Outcome(
            WITHDRAWN,
            "withdraw",
            why,
            reason,
            signals,
            after,
            articles,
            completed=completed,
            withdrawn_text=completed.text,
            hits=hits,
        )

    if completed.handoff is not None:
        return withdraw(
            "low_confidence", [f"the model asked for a person: {completed.handoff}"]
        )
    if not any(char.isalnum() for char in completed.text):
        # Only citations, punctuation or invisible characters: the customer
        # would see an empty bubble with sources under it.
        return withdraw("no_answer", ["the answer has no words"])
    if violations:
        return withdraw("guardrail", signals.violations)
    if after < threshold:
        return withdraw(
            "low_confidence",
            [
                f"confidence {after:.2f} after answering is below {threshold:.2f}"
                + ("" if signals.grounded else " (the answer cites no article)")
            ],
        )
    return Outcome(
        completed.text,
        "answer",
        [f"confidence {after:.2f}"],
        None,
        signals,
        after,
        articles,
        completed=completed,
        hits=hits,
    )
