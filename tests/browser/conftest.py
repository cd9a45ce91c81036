"""The real server in a subprocess, and Debian's Chromium driven by Playwright."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# The interpreter running the tests, so a checkout without .venv works too.
PYTHON = Path(sys.executable)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60.0

# The first answer loads the embedding model; later ones take milliseconds.
expect.set_options(timeout=20_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stderr}")


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"The server exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(
        f"The server did not answer within {SERVER_START_TIMEOUT:.0f} s:\n"
        f"{log.read_text()}"
    )


@pytest.fixture(scope="session")
def live_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole server (uvicorn, ASGI, websockets) on a fresh demo database."""
    tmp = tmp_path_factory.mktemp("e2e")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "VAR_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp}/e2e.sqlite3",
        "OFFLINE_STREAM_DELAY_MS": "5",
        "DEBUG": "true",
        "OPENAI_API_KEY": "",
        "WIDGET_ALLOWED_ORIGINS": url,
        "REDIS_URL": "",
    }
    _manage(env, "migrate", "--noinput")
    _manage(env, "load_demo")

    log = tmp / "server.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [
                str(PYTHON),
                "-m",
                "uvicorn",
                "support_bot.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url + "/", server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# Module scope, not session: sync Playwright keeps an event loop running while
# it is started, and the async tests of later modules cannot start their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = "Chromium is missing: apt-get update && apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, live_server_url: str) -> Iterator[BrowserContext]:
    """A fresh browser profile: empty localStorage, so a new visitor."""
    ctx = browser.new_context(
        base_url=live_server_url, viewport={"width": 1280, "height": 800}
    )
    yield ctx
    ctx.close()


@pytest.fixture
def frames(context: BrowserContext) -> list[tuple[str, dict[str, Any]]]:
    """Every websocket frame of the test, as ("sent" | "received", frame)."""
    log: list[tuple[str, dict[str, Any]]] = []

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: log.append(("sent", json.loads(payload))))
        ws.on(
            "framereceived",
            lambda payload: log.append(("received", json.loads(payload))),
        )

    context.on("page", lambda page: page.on("websocket", watch))
    return log


@pytest.fixture
def page(context: BrowserContext, frames: list[Any]) -> Iterator[Page]:
    """The demo page; fails the test on any uncaught error in the page."""
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto("/")
    yield tab
    assert errors == []
