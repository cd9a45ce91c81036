"""uvicorn's own lines go through our handler, and --no-access-log holds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# uvicorn configures its loggers when it reads its options, before it imports
# the application and so before Django configures logging; uvicorn's HTTP
# protocols then write access lines only if "uvicorn.access" has a handler.
SCRIPT = """
import json, logging, sys, django, uvicorn
uvicorn.Config("support_bot.asgi:application", access_log=sys.argv[1] == "on")
django.setup()
logging.getLogger("uvicorn.error").info("Started server process")
print(json.dumps(logging.getLogger("uvicorn.access").hasHandlers()))
"""


def run_under_uvicorn(access_log: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "DEBUG": "true"}
    env["DJANGO_SETTINGS_MODULE"] = "support_bot.settings"
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, access_log],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize(("access_log", "logged"), [("off", False), ("on", True)])
def test_access_lines_follow_uvicorns_option(access_log: str, logged: bool) -> None:
    done = run_under_uvicorn(access_log)

    assert json.loads(done.stdout) is logged


def test_uvicorns_messages_share_our_log_format() -> None:
    done = run_under_uvicorn("off")

    [line] = done.stderr.splitlines()
    record = json.loads(line)
    assert (record["logger"], record["message"]) == (
        "uvicorn.error",
        "Started server process",
    )
