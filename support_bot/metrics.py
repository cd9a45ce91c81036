"""Prometheus metrics: what the bot and the people behind it are doing.

Code records figures only through the functions below, never by touching the
metric objects, so names, labels and units stay in one place. Each function is
cheap (no I/O) and safe from sync and async code alike. A caller inside a
transaction records after the commit (`transaction.on_commit`), so a rolled-back
write is never counted.

Several processes: uvicorn can run several web workers and Celery runs its
own, each with separate memory. With PROMETHEUS_MULTIPROC_DIR set in the
environment of every one of them (the same, empty, writable directory on one
host, emptied before they start), prometheus-client writes each process's
values to files there and `/metrics` adds them up. prometheus-client reads
the variable itself, when first imported, not through Django's settings.
Without it, each process keeps its own figures and `/metrics` shows the
process that answered the scrape.

Two figures are read when scraped rather than counted: Celery's queue depth
(the broker's list lengths) and the agents online (recent console heartbeats).
"""

import atexit
import logging
import os
from collections.abc import Iterable
from functools import cache
from typing import Literal, get_args

import redis
from django.conf import settings
from django.db import DatabaseError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from support_bot.bot.engine import ErrorKind

logger = logging.getLogger(__name__)

AnswerOutcome = Literal[
    "answered", "no_answer", "escalated", "interrupted", "withdrawn"
]
SocketKind = Literal["widget", "agent"]
Responder = Literal["bot", "agent"]

PREFIX = "support_bot"
# The offline responder reports token counts too, but costs nothing.
UNPRICED_MODELS = frozenset({"offline"})
# A scrape must not wait on a slow broker; a missing sample is better.
BROKER_TIMEOUT = 0.5

CONVERSATIONS_STARTED = Counter(
    f"{PREFIX}_conversations_started", "Conversations started by customers."
)
MESSAGES = Counter(
    f"{PREFIX}_messages", "Messages stored, by who wrote them.", ["role"]
)
BOT_ANSWERS = Counter(
    f"{PREFIX}_bot_answers",
    "Bot replies to customer messages, by how they ended: answered, no_answer "
    "(said it has none, no handover), escalated (handed to people instead of "
    "answering), interrupted (the engine failed), withdrawn (the model's answer "
    "was taken back after it was written).",
    ["outcome"],
)
ESCALATIONS = Counter(
    f"{PREFIX}_escalations", "Conversations handed to people, by reason.", ["reason"]
)
LLM_ERRORS = Counter(
    f"{PREFIX}_llm_errors", "Failed language-model calls, by kind.", ["kind"]
)
FEEDBACK = Counter(f"{PREFIX}_feedback", "Customer ratings, by rating.", ["rating"])
LLM_TOKENS = Counter(
    f"{PREFIX}_llm_tokens", "Tokens used, by model and type.", ["model", "type"]
)
LLM_COST = Counter(
    f"{PREFIX}_llm_estimated_cost",
    "Estimated spend on the language model, in the currency of "
    "LLM_PRICE_PROMPT_PER_1K and LLM_PRICE_COMPLETION_PER_1K.",
    ["model"],
)
LLM_ANSWER_SECONDS = Histogram(
    f"{PREFIX}_llm_answer_seconds",
    "Time to a whole bot answer, retrieval included.",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
LLM_FIRST_DELTA_SECONDS = Histogram(
    f"{PREFIX}_llm_first_delta_seconds",
    "Time from starting an answer to its first streamed words.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20),
)
FIRST_RESPONSE_SECONDS = Histogram(
    f"{PREFIX}_first_response_seconds",
    "Bot: from a customer's message to the first words of the bot's answer. "
    "Agent: from an escalation to a person's first message after it.",
    ["responder"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 86400),
)
# "livesum": only processes still running count, so a web process that exits
# does not leave its sockets in the total. One killed outright (SIGKILL, out of
# memory) cannot clean up: its sockets count until the directory is emptied.
WEBSOCKETS_OPEN = Gauge(
    f"{PREFIX}_websockets_open",
    "Open websocket connections, by console.",
    ["kind"],
    multiprocess_mode="livesum",
)

# Series that exist from the start, so rate() and alerts see a zero rather
# than nothing before the first event.
for _outcome in get_args(AnswerOutcome):
    BOT_ANSWERS.labels(_outcome)
for _kind in (*get_args(ErrorKind), "internal"):
    LLM_ERRORS.labels(_kind)
for _socket in get_args(SocketKind):
    WEBSOCKETS_OPEN.labels(_socket)


# --- Recording ----------------------------------------------------------------


def conversation_started() -> None:
    CONVERSATIONS_STARTED.inc()


def message_stored(role: str) -> None:
    MESSAGES.labels(role).inc()


def bot_answer_finished(outcome: AnswerOutcome) -> None:
    BOT_ANSWERS.labels(outcome).inc()


def escalated(reason: str) -> None:
    ESCALATIONS.labels(reason).inc()


def llm_error(kind: str) -> None:
    LLM_ERRORS.labels(kind).inc()


def feedback_recorded(rating: str) -> None:
    FEEDBACK.labels(rating).inc()


def llm_answer_timed(total_seconds: float, first_delta_seconds: float | None) -> None:
    """One answer's timings; `first_delta_seconds` is None when none streamed."""
    LLM_ANSWER_SECONDS.observe(total_seconds)
    if first_delta_seconds is not None:
        LLM_FIRST_DELTA_SECONDS.observe(first_delta_seconds)


def first_response(responder: Responder, seconds: float) -> None:
    FIRST_RESPONSE_SECONDS.labels(responder).observe(seconds)


def llm_usage(model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Tokens one call used, and what they cost at the configured prices."""
    LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(model, "completion").inc(completion_tokens)
    if model in UNPRICED_MODELS:
        return
    cost = (
        prompt_tokens * settings.LLM_PRICE_PROMPT_PER_1K
        + completion_tokens * settings.LLM_PRICE_COMPLETION_PER_1K
    ) / 1000
    LLM_COST.labels(model).inc(cost)


def socket_opened(kind: SocketKind) -> None:
    WEBSOCKETS_OPEN.labels(kind).inc()


def socket_closed(kind: SocketKind) -> None:
    """Precondition: `socket_opened(kind)` was called for this socket."""
    WEBSOCKETS_OPEN.labels(kind).dec()


# --- Read at scrape time ------------------------------------------------------


def celery_queue_depths() -> dict[str, int] | None:
    """Tasks waiting in each Celery queue; None when there is no queue to read.

    With tasks inline there is no queue, and only a Redis broker is read.
    """
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    from support_bot.celery import app

    url = str(app.conf.broker_url or "")
    if app.conf.task_always_eager or not url.startswith(("redis://", "rediss://")):
        return None
    prefix = (app.conf.broker_transport_options or {}).get("global_keyprefix", "")
    queues = sorted(
        {str(app.conf.task_default_queue)}
        | {str(queue.name) for queue in app.conf.task_queues or ()}
    )
    # One list per priority step, named as kombu's Redis transport names them.
    keys = [
        (queue, prefix + (f"{queue}{Channel.sep}{step}" if step else queue))
        for queue in queues
        for step in PRIORITY_STEPS
    ]
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )
    try:
        with client.pipeline(transaction=False) as pipe:
            for _, key in keys:
                pipe.llen(key)
            lengths = pipe.execute()
    finally:
        client.close()
    depths = dict.fromkeys(queues, 0)
    for (queue, _), length in zip(keys, lengths, strict=True):
        depths[queue] += length
    return depths


def agents_online() -> int:
    from escalation.actions import online_agents

    return len(online_agents())


class ScrapeTimeCollector:
    """Figures read from Redis and the database when Prometheus scrapes.

    A source that fails leaves its sample out of this scrape instead of
    failing the whole scrape; the warning says why.
    """

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering never touches Redis or the database.
        return [self._queue_family(), self._agents_family()]

    def collect(self) -> Iterable[Metric]:
        try:
            depths = celery_queue_depths()
        except redis.RedisError as error:
            logger.warning("Celery queue depth unavailable: %s", type(error).__name__)
        else:
            if depths is not None:
                family = self._queue_family()
                for queue, depth in depths.items():
                    family.add_metric([queue], depth)
                yield family

        try:
            online = agents_online()
        except DatabaseError as error:
            logger.warning("Agents online unavailable: %s", type(error).__name__)
        else:
            family = self._agents_family()
            family.add_metric([], online)
            yield family

    @staticmethod
    def _queue_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_celery_queue_depth",
            "Tasks waiting in the broker, by queue.",
            labels=["queue"],
        )

    @staticmethod
    def _agents_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_agents_online", "Agents whose console sent a recent heartbeat."
        )


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition_registry() -> CollectorRegistry:
    """The registry `/metrics` renders: this process, or all of them."""
    if multiprocess_dir():
        # A fresh registry per scrape: the collector reads the files as they
        # are now, and the scrape-time figures are read once.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(ScrapeTimeCollector())
        return registry
    return _default_registry()


@cache
def _default_registry() -> CollectorRegistry:
    REGISTRY.register(ScrapeTimeCollector())
    return REGISTRY


def _forget_live_gauges() -> None:
    # Read the pid at exit: a forked child inherits this hook from its parent.
    mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


if multiprocess_dir():
    atexit.register(_forget_live_gauges)
