"""Tasks run on a real Celery worker through Redis, as in production."""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conversations import actions
from conversations.models import Conversation
from conversations.tasks import summarize_conversation_task
from support_bot.celery import app as celery_app
from tests.servers import test_database_url

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _started_worker(settings: Any, **extra_env: str) -> Iterator[None]:
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("memory"):
        pytest.fail("CELERY_BROKER_URL must name Redis when REDIS_URL is set")
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker,
        "OPENAI_API_KEY": "",
        **extra_env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "support_bot",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        output = process.stdout.read().decode() if process.stdout else ""
        if "Traceback" in output:
            print(output)


@pytest.fixture
def worker(redis_url: str, transactional_db: None, settings: Any) -> Iterator[None]:
    # Small enough that eight short turns need folding.
    with _started_worker(settings, MEMORY_TOKEN_BUDGET="20"):
        yield


@pytest.mark.worker
def test_worker_folds_a_long_conversation_into_its_summary(
    worker: None, settings: Any
) -> None:
    settings.MEMORY_TOKEN_BUDGET = 10_000  # no fold while the turns are written
    session = actions.open_visitor_session(None)
    for n in range(8):
        actions.post_customer_message_once(
            session.visitor, f"w{n}", f"Worker question number {n} about my card"
        )
    conversation = Conversation.objects.get()

    summarize_conversation_task.delay(str(conversation.id))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conversation.refresh_from_db()
        if conversation.summary_until_seq:
            break
        time.sleep(0.2)
    assert conversation.summary_until_seq > 0, "the worker did not run the task"
    assert "Worker question number 0" in conversation.summary


def _wait_for(check: Any, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.worker
def test_worker_routes_an_escalation_to_an_online_agent(worker: None) -> None:
    from escalation.models import Escalation
    from tests.agents import make_agent

    agent = make_agent("dana")
    session = actions.open_visitor_session(None)

    actions.request_human(session.visitor)

    escalation = Escalation.objects.get()
    assert _wait_for(lambda: Escalation.objects.get().status == "assigned")
    escalation.refresh_from_db()
    assert escalation.assigned_to == agent


@pytest.mark.worker
def test_escalation_whose_task_was_lost_is_routed_by_the_sweep(
    redis_url: str, transactional_db: None, settings: Any
) -> None:
    """A worker killed mid-task: the task is gone, the sweep still routes it."""
    from escalation.models import Escalation
    from escalation.tasks import sweep_escalations_task
    from tests.agents import make_agent

    celery_app.conf.task_always_eager = False
    session = actions.open_visitor_session(None)
    actions.request_human(session.visitor)  # queued on the broker, no worker yet
    celery_app.control.purge()  # ... and lost, as with a worker killed mid-task
    agent = make_agent("dana")
    Escalation.objects.update(routed_at=None)

    with _started_worker(settings):
        sweep_escalations_task.delay()
        assert _wait_for(lambda: Escalation.objects.get().status == "assigned")

    assert Escalation.objects.get().assigned_to == agent


@pytest.mark.worker
def test_worker_answers_a_question_whose_web_process_stopped(
    redis_url: str, kb: Any, settings: Any
) -> None:
    """Beat's sweep, run by a real worker: the question stored by a web
    process that stopped before answering gets its answer."""
    from conversations.models import Message
    from conversations.tasks import answer_stranded_task

    session = actions.open_visitor_session(None)
    posted = actions.post_customer_message_once(
        session.visitor, "q-1", "I lost my card"
    )
    time.sleep(0.5)

    with _started_worker(settings, STRANDED_ANSWER_SECONDS="0.5", LLM_TIMEOUT="0.4"):
        answer_stranded_task.delay()
        assert _wait_for(lambda: Message.objects.filter(role="bot").exists()), (
            "the worker answered nothing"
        )

    answer = Message.objects.get(role="bot")
    assert answer.conversation_id == posted.conversation.id
    assert answer.metadata["reply_to"] == posted.message.seq
    assert "Freeze" in answer.text
