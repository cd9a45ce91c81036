"""The real server in a subprocess, for tests of what only a real process shows:
being killed, losing Redis, the browser."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parents[1]
# The interpreter running the tests, so a checkout without .venv works too.
PYTHON = Path(sys.executable)
SERVER_START_TIMEOUT = 60.0


def test_database_url() -> str:
    """The database the tests run on, for a server in a subprocess."""
    from django.db import connection

    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def manage(env: dict[str, str], *args: str) -> None:
    result = _manage(env, *args)
    if result.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stderr}")


def manage_refused(env: dict[str, str], *args: str) -> str:
    """What manage.py printed on stderr when it refused to run, as it must."""
    result = _manage(env, *args)
    assert result.returncode != 0, f"manage.py {' '.join(args)} ran"
    return result.stderr


def wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
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


def start_uvicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """uvicorn on 127.0.0.1:`port`, its output appended to `log`, once it
    answers /healthz."""
    argv = [str(PYTHON), "-m", "uvicorn", "support_bot.asgi:application"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until_up(f"http://127.0.0.1:{port}/healthz", server, log)
    return server


def stop(server: subprocess.Popen[bytes]) -> None:
    server.kill()
    server.wait(timeout=10)


class Widget:
    """One widget's socket to a server in a subprocess, frame by frame."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{port}/ws/widget/",
            origin=Origin(f"http://127.0.0.1:{port}"),
            legacy=True,  # a connection to close by hand, not a context
        )
        self.send({"type": "hello", "token": token})
        self.token: str = self.receive_until(lambda f: f["type"] == "welcome")["token"]

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def receive_until(
        self, done: Callable[[dict[str, Any]], bool], seconds: float = 20
    ) -> dict[str, Any]:
        """The first frame that satisfies `done`, skipping the others."""
        deadline = time.monotonic() + seconds
        while True:
            frame: dict[str, Any] = json.loads(
                self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            )
            if done(frame):
                return frame

    def resume(self, after_seq: int = 0) -> None:
        self.send({"type": "resume", "after_seq": after_seq})
        self.receive_until(lambda f: f["type"] == "resumed")

    def ask(self, client_id: str, text: str) -> dict[str, Any]:
        """The `ack` of a customer message."""
        self.send({"type": "message", "client_id": client_id, "text": text})
        return self.receive_until(lambda f: f["type"] == "ack")

    def close(self) -> None:
        self.ws.close()


def is_bot_message(frame: dict[str, Any]) -> bool:
    return bool(frame["type"] == "message" and frame["role"] == "bot")
