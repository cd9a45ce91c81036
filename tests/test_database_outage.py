"""The database goes away under a running server, and comes back.

The server in a subprocess reaches PostgreSQL through a TCP relay of the
test's own, which the test cuts and restores: what a network partition or a
database restart looks like from the web process.
"""

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests import servers


class Relay:
    """Forwards 127.0.0.1:`port` to the database, until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = servers.free_port()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every relayed connection and refuse new ones."""
        with self._lock:
            if self._listener is not None:
                # Wakes the thread blocked in accept(), which close() alone
                # does not: the port would stay bound.
                _shut(self._listener)
                self._listener.close()
                self._listener = None
            for sock in self._open:
                _shut(sock)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _shut(source)
        _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(transactional_db: None) -> Iterator[Relay]:
    db = connection.settings_dict
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("the relay stands between the server and PostgreSQL")
    relay = Relay((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    relay.start()
    yield relay
    relay.cut()


def test_a_message_sent_while_the_database_is_away_is_sent_again_after(
    relay: Relay, kb: Any, tmp_path: Path
) -> None:
    db = connection.settings_dict
    port = servers.free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{relay.port}/{db['NAME']}",
        "REDIS_URL": "",
        "DEBUG": "true",
        "WIDGET_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "OPENAI_API_KEY": "",
        "OFFLINE_STREAM_DELAY_MS": "0",
    }
    server = servers.start_uvicorn(env, port, tmp_path / "server.log")
    try:
        widget = servers.Widget(port)
        widget.resume()
        widget.ask("q-1", "I lost my card")
        widget.receive_until(servers.is_bot_message)

        relay.cut()
        widget.send({"type": "message", "client_id": "q-2", "text": "And my PIN?"})
        error = widget.receive_until(lambda f: f["type"] in ("error", "ack"))
        # Not stored, and named, so the widget sends it again.
        assert (error["type"], error["code"], error.get("client_id")) == (
            "error",
            "server_error",
            "q-2",
        )

        relay.start()
        ack = widget.ask("q-2", "And my PIN?")
        assert (ack["seq"], ack["duplicate"]) == (3, False)
        answer = widget.receive_until(servers.is_bot_message)
        assert answer["reply_to"] == 3
        widget.close()
    finally:
        servers.stop(server)
