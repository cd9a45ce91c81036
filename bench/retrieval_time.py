"""Retrieval time over a large help centre, on synthetic articles.

The index is `support_bot.bot.retrieval.ArticleIndex`, used directly: no
database and no server, only the embedding and the scoring a reply pays for.
Articles are made from a fixed banking vocabulary with a seeded generator, so
every run searches the same index.
"""

import random
import statistics
import time
from dataclasses import dataclass

from support_bot.bot.retrieval import ArticleDoc, ArticleIndex

VERBS = [
    *("order", "block", "freeze", "change", "reset", "cancel", "top up"),
    *("send", "receive", "verify"),
]
NOUNS = [
    *("card", "transfer", "payment", "account", "passcode", "address"),
    *("statement", "limit", "fee", "pin", "salary", "refund", "cheque"),
    *("direct debit", "standing order", "app", "phone", "identity"),
    *("cash machine", "exchange rate", "savings", "pocket", "loan", "overdraft"),
]
PLACES = ["abroad", "online", "at home", "in the app", "at a shop", "by phone"]
OPENINGS = ["how do i", "can i", "why can't i", "where do i", "is it free to"]
QUESTIONS_PER_ARTICLE = 6
SEARCHES = 200


@dataclass(frozen=True)
class RetrievalTiming:
    articles: int
    vectors: int
    build_seconds: float
    search_ms_p50: float
    search_ms_p95: float


def _phrase(rng: random.Random) -> str:
    opening = rng.choice(OPENINGS)
    words = [rng.choice(VERBS), "my", rng.choice(NOUNS), rng.choice(NOUNS)]
    return f"{opening} {' '.join(words)} {rng.choice(PLACES)}?"


def synthetic_docs(count: int, seed: int = 6) -> list[ArticleDoc]:
    rng = random.Random(seed)
    docs = []
    for number in range(1, count + 1):
        questions = tuple(_phrase(rng) for _ in range(QUESTIONS_PER_ARTICLE))
        body = " ".join(_phrase(rng) for _ in range(5))
        docs.append(ArticleDoc(number, f"{questions[0]} ({number})", body, questions))
    return docs


def time_retrieval(count: int) -> RetrievalTiming:
    docs = synthetic_docs(count)
    started = time.perf_counter()
    index = ArticleIndex.build(docs)
    build_seconds = time.perf_counter() - started

    rng = random.Random(count)
    queries = [_phrase(rng) for _ in range(SEARCHES)]
    index.search(queries[0])
    timings = []
    for query in queries:
        started = time.perf_counter()
        index.search(query, k=3)
        timings.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(timings, n=100)
    return RetrievalTiming(
        articles=count,
        vectors=index.vector_count,
        build_seconds=build_seconds,
        search_ms_p50=statistics.median(timings),
        search_ms_p95=cuts[94],
    )
