"""Tasks run on a real Celery worker through Redis, as in production."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from conversations import actions
from conversations.models import Conversation
from conversations.tasks import summarize_conversation_task
from support_bot.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def worker(redis_url: str, transactional_db: None, settings: Any) -> Iterator[None]:
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("memory"):
        pytest.fail("CELERY_BROKER_URL must name Redis when REDIS_URL is set")
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker,
        "OPENAI_API_KEY": "",
        # Small enough that eight short turns need folding.
        "MEMORY_TOKEN_BUDGET": "20",
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
