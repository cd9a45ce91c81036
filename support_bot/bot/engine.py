"""The one interface every answering engine implements.

An engine turns a `BotRequest` (question, memory, retrieved articles) into a
stream: zero or more `TextDelta`s, then exactly one `Completed`. Failures are
raised as `EngineError` with a kind the caller can act on; whatever was
streamed before the failure is the caller's to discard.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["customer", "bot", "agent", "system"]


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True)
class RetrievedArticle:
    id: int
    title: str
    body: str
    score: float


@dataclass(frozen=True)
class BotRequest:
    question: str
    # Recent turns, oldest first, not including the question itself.
    history: list[Turn] = field(default_factory=list)
    # Older turns, folded into prose.
    summary: str = ""
    # Best first; already filtered by the retrieval threshold.
    articles: list[RetrievedArticle] = field(default_factory=list)
    bot_name: str = "Assistant"
    # Published tone and policy guidelines, in order, added to the rules.
    guidelines: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Completed:
    text: str
    # Ids of the articles the answer is built on.
    sources: list[int]
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    # False when the engine itself says it has no answer.
    answered: bool = True
    # True when that "no answer" is certain enough to hand the conversation to
    # people. The offline responder knows (no article matched); a model's
    # uncited reply may be small talk, so it does not set this.
    needs_person: bool = False
    # The model's own signals: the reason it gave when it called the hand-off
    # tool, and the mean token probability where the server reports it.
    handoff: str | None = None
    logprob_confidence: float | None = None


StreamEvent = TextDelta | Completed

ErrorKind = Literal[
    "timeout", "rate_limited", "stream_cut", "upstream", "refused", "truncated"
]


class EngineError(Exception):
    def __init__(self, kind: ErrorKind, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class BotEngine(Protocol):
    name: str

    def stream(self, request: BotRequest) -> AsyncIterator[StreamEvent]: ...

    async def summarize(self, previous_summary: str, turns: list[Turn]) -> str: ...

    async def self_check(
        self, question: str, answer: str, articles: list[RetrievedArticle]
    ) -> float | None:
        """The engine's own grade of `answer` in [0, 1], or None if it has none."""
        ...
