"""The offline responder: answers with the best knowledge article, or says it
has none.

It runs when no LLM is configured. It never composes text of its own beyond a
short lead-in, so it cannot state anything the article does not.
"""

import asyncio
import re
from collections.abc import AsyncIterator

from .embeddings import count_tokens
from .engine import (
    BotRequest,
    Completed,
    RetrievedArticle,
    StreamEvent,
    TextDelta,
    Turn,
)

NO_ANSWER = (
    "I'm sorry, I don't have an answer to that in our help articles, so I've "
    "asked a person from our support team to take over. They'll reply here."
)

# Split after whitespace so each chunk is a word plus the space that follows it.
_WORDS = re.compile(r"\S+\s*")


class OfflineEngine:
    name = "offline"

    def __init__(self, word_delay: float = 0.0) -> None:
        # A small pause between words makes the answer read as it is written,
        # like a model's stream; tests set it to zero.
        self.word_delay = word_delay

    async def stream(self, request: BotRequest) -> AsyncIterator[StreamEvent]:
        if request.articles:
            best = request.articles[0]
            text = best.body.strip()
            sources = [best.id]
        else:
            text = NO_ANSWER
            sources = []

        for match in _WORDS.finditer(text):
            yield TextDelta(match.group())
            if self.word_delay:
                await asyncio.sleep(self.word_delay)

        yield Completed(
            text=text,
            sources=sources,
            model=self.name,
            prompt_tokens=count_tokens(request.question),
            completion_tokens=count_tokens(text),
            finish_reason="stop",
            answered=bool(sources),
            needs_person=not sources,
        )

    async def self_check(
        self, question: str, answer: str, articles: list[RetrievedArticle]
    ) -> float | None:
        # It quotes an article word for word: there is nothing to grade.
        return None

    async def summarize(self, previous_summary: str, turns: list[Turn]) -> str:
        """An extractive summary: what the customer asked, newest last."""
        asked = [t.text.strip() for t in turns if t.role == "customer"]
        lines = [previous_summary.strip()] if previous_summary.strip() else []
        lines += [f"The customer asked: {_clip(q, 200)}" for q in asked]
        # Keep the newest lines when the summary itself grows too long.
        while len(lines) > 1 and count_tokens("\n".join(lines)) > 300:
            lines.pop(0)
        return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
