"""/metrics shows what the application recorded, summed over its processes."""

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from support_bot import metrics
from support_bot.celery import app as celery_app
from tests.agents import make_agent

ROOT = Path(__file__).resolve().parent.parent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def record_a_shift() -> None:
    """What a short afternoon of chats reports, through the public API."""
    for _ in range(3):
        metrics.conversation_started()
    for role in ("customer", "customer", "bot", "agent"):
        metrics.message_stored(role)
    metrics.bot_answer_finished("answered")
    metrics.bot_answer_finished("answered")
    metrics.bot_answer_finished("interrupted")
    metrics.escalated("customer_request")
    metrics.escalated("llm_error")
    metrics.llm_error("timeout")
    metrics.feedback_recorded("down")
    metrics.llm_answer_timed(1.5, 0.3)
    metrics.llm_answer_timed(4.0, None)
    metrics.first_response("bot", 0.8)
    metrics.first_response("agent", 95.0)
    metrics.llm_usage("gpt-test", prompt_tokens=2000, completion_tokens=500)
    metrics.llm_usage("offline", prompt_tokens=30, completion_tokens=40)
    metrics.socket_opened("widget")
    metrics.socket_opened("widget")
    metrics.socket_closed("widget")
    metrics.socket_opened("agent")


@pytest.fixture
def open_sockets_reset() -> Iterator[None]:
    # The gauge is process-wide: leave it as this test found it.
    name = "support_bot_websockets_open"
    before = {
        kind: REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0
        for kind in ("widget", "agent")
    }
    yield
    for kind, count in before.items():
        metrics.WEBSOCKETS_OPEN.labels(kind).set(count)


def test_metrics_show_each_figure_recorded(
    db: None, settings: Any, open_sockets_reset: None
) -> None:
    settings.LLM_PRICE_PROMPT_PER_1K = 0.15
    settings.LLM_PRICE_COMPLETION_PER_1K = 0.6
    make_agent("dana")
    make_agent("away", online=False)
    client = Client()
    before = scrape(client)

    record_a_shift()
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    p = "support_bot_"
    assert delta(f"{p}conversations_started_total") == 3
    assert delta(f"{p}messages_total", role="customer") == 2
    assert delta(f"{p}messages_total", role="agent") == 1
    assert delta(f"{p}bot_answers_total", outcome="answered") == 2
    assert delta(f"{p}bot_answers_total", outcome="interrupted") == 1
    assert delta(f"{p}escalations_total", reason="customer_request") == 1
    assert delta(f"{p}escalations_total", reason="llm_error") == 1
    assert delta(f"{p}llm_errors_total", kind="timeout") == 1
    assert delta(f"{p}feedback_total", rating="down") == 1
    assert delta(f"{p}llm_answer_seconds_count") == 2
    assert delta(f"{p}llm_answer_seconds_sum") == pytest.approx(5.5)
    assert delta(f"{p}llm_answer_seconds_bucket", le="2.0") == 1
    assert delta(f"{p}llm_first_delta_seconds_count") == 1
    assert delta(f"{p}llm_first_delta_seconds_sum") == pytest.approx(0.3)
    assert delta(f"{p}first_response_seconds_sum", responder="bot") == 0.8
    assert delta(f"{p}first_response_seconds_sum", responder="agent") == 95
    assert delta(f"{p}llm_tokens_total", model="gpt-test", type="prompt") == 2000
    assert delta(f"{p}llm_tokens_total", model="gpt-test", type="completion") == 500
    assert delta(f"{p}llm_tokens_total", model="offline", type="prompt") == 30
    # 2000 * 0.15 / 1000 + 500 * 0.6 / 1000; the offline responder costs nothing.
    assert delta(f"{p}llm_estimated_cost_total", model="gpt-test") == pytest.approx(0.6)
    assert (f"{p}llm_estimated_cost_total", (("model", "offline"),)) not in after
    assert delta(f"{p}websockets_open", kind="widget") == 1
    assert delta(f"{p}websockets_open", kind="agent") == 1
    assert value(after, f"{p}agents_online") == 1
    # Tasks run inline here: there is no queue to report.
    assert not any(name == f"{p}celery_queue_depth" for name, _ in after)


def test_zero_series_exist_before_the_first_event(db: None) -> None:
    samples = scrape(Client())

    for outcome in ("answered", "no_answer", "escalated", "interrupted", "withdrawn"):
        assert ("support_bot_bot_answers_total", (("outcome", outcome),)) in samples
    assert ("support_bot_llm_errors_total", (("kind", "rate_limited"),)) in samples


@pytest.fixture
def private_queue() -> Iterator[str]:
    """Tasks go to a queue of this test's own, emptied afterwards."""
    conf = celery_app.conf
    queue, previous = f"metrics-test-{secrets.token_hex(4)}", conf.task_default_queue
    conf.task_default_queue = queue
    yield queue
    conf.task_default_queue = previous
    broker = redis.Redis.from_url(conf.broker_url)
    # The queue's lists, and the exchange bindings kombu made for it.
    broker.delete(*broker.keys(f"{queue}*"), *broker.keys(f"_kombu.binding*.{queue}"))
    broker.close()


@pytest.mark.redis
def test_queue_depth_counts_tasks_waiting_on_the_broker(
    db: None, redis_url: str, private_queue: str
) -> None:
    celery_app.conf.task_always_eager = False
    celery_app.send_task("tests.never_run")
    celery_app.send_task("tests.never_run")
    # Kombu keeps each priority step in a list of its own; all count.
    celery_app.send_task("tests.never_run", priority=9)

    samples = scrape(Client())

    assert value(samples, "support_bot_celery_queue_depth", queue=private_queue) == 3


def test_metrics_need_the_token_when_one_is_set(db: None, settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    client = Client()

    assert client.get("/metrics").status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert client.get("/metrics", headers=wrong).status_code == 401
    scrape(client, Authorization="Bearer s3cret-token")


MULTIPROCESS_SCRIPT = """
import django
django.setup()
from support_bot import metrics
{body}
"""


def run_process(body: str, multiproc_dir: Path) -> str:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "DJANGO_SETTINGS_MODULE": "support_bot.settings",
        # Nothing to read agents from: the scrape leaves that figure out.
        "DATABASE_URL": f"sqlite:///{multiproc_dir / 'none.sqlite3'}",
        "REDIS_URL": "",
    }
    script = MULTIPROCESS_SCRIPT.format(body=textwrap.dedent(body))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_processes_add_up_and_stopped_ones_drop_their_sockets(tmp_path: Path) -> None:
    run_process(
        """
        metrics.conversation_started()
        metrics.conversation_started()
        metrics.socket_opened("widget")
        """,
        tmp_path,
    )
    output = run_process(
        """
        from prometheus_client import generate_latest
        metrics.conversation_started()
        metrics.socket_opened("agent")
        print(generate_latest(metrics.exposition_registry()).decode())
        """,
        tmp_path,
    )

    samples = parse(output)
    assert value(samples, "support_bot_conversations_started_total") == 3
    # The first process exited: its open socket no longer counts.
    assert value(samples, "support_bot_websockets_open", kind="widget") == 0
    assert value(samples, "support_bot_websockets_open", kind="agent") == 1
