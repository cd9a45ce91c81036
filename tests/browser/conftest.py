"""The real server in a subprocess, and Debian's Chromium driven by Playwright."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.servers import free_port, manage, start_uvicorn

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

# The first answer loads the embedding model; later ones take milliseconds.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def live_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole server (uvicorn, ASGI, websockets) on a fresh demo database."""
    tmp = tmp_path_factory.mktemp("e2e")
    port = free_port()
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
    manage(env, "migrate", "--noinput")
    manage(env, "load_demo")

    server = start_uvicorn(env, port, tmp / "server.log")
    try:
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
