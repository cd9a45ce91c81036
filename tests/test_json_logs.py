"""In production each log line is one JSON object with ids, never customer text."""

import copy
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from conversations import actions
from conversations.models import Visitor

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER_TEXT = "my card ending 4242 was stolen at Paddington"


def test_log_format_json_writes_one_object_a_line() -> None:
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('conversations.replies').warning("
        "'LLM answer failed: %s', 'timeout', "
        "extra={'conversation_id': 'c0ffee', 'kind': 'timeout'})"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DEBUG": "true"}
    env["DJANGO_SETTINGS_MODULE"] = "support_bot.settings"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    [line] = done.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "conversations.replies"
    assert record["message"] == "LLM answer failed: timeout"
    assert record["conversation_id"] == "c0ffee"
    assert record["kind"] == "timeout"
    assert record["timestamp"].endswith("+00:00")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Our loggers, writing through the configured JSON formatter and filters."""
    config: dict[str, Any] = copy.deepcopy(django_settings.LOGGING)
    stream = io.StringIO()
    config["handlers"]["console"]["formatter"] = "json"
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig(django_settings.LOGGING)


def test_an_escalation_is_logged_with_its_ids_and_not_the_customers_words(
    transactional_db: None, json_lines: io.StringIO
) -> None:
    visitor = Visitor.objects.create(token_hash="a" * 64)
    posted = actions.post_customer_message(visitor, "c-1", CUSTOMER_TEXT)
    actions.request_human(visitor)

    records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    escalated = [r for r in records if r.get("reason") == "customer_request"]
    assert escalated, records
    assert escalated[0]["conversation_id"] == str(posted.conversation.id)
    assert all(CUSTOMER_TEXT not in json.dumps(r) for r in records)
    assert all({"timestamp", "level", "logger"} <= r.keys() for r in records)
