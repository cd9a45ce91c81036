"""A widget whose connection dies mid-answer costs the server nothing but the
frames it could not send: the answer is still stored, and nothing is logged
as an error.

A real server, because what a dead peer does to a send (a reset connection,
an ASGI server refusing the send) is uvicorn's, not the test client's.
"""

import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.fake_llm import Reply


@pytest.mark.django_db(transaction=True)
def test_an_answer_outlives_the_socket_that_asked_for_it(
    tmp_path: Path, fake_llm: Any
) -> None:
    port = servers.free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/closed.sqlite3",
        "REDIS_URL": "",
        "DEBUG": "true",
        "WIDGET_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "CONFIDENCE_THRESHOLD": "0",
    }
    servers.manage(env, "migrate", "--noinput")
    servers.manage(env, "load_demo")
    log = tmp_path / "server.log"
    # Pieces keep coming well after the customer's connection is gone.
    chunks = ["Freeze the card ", "in the app ", *["and wait. "] * 20]
    fake_llm.script(Reply(chunks=chunks, chunk_delay=0.05))

    server = servers.start_uvicorn(env, port, log)
    try:
        widget = servers.Widget(port)
        widget.resume()
        ack = widget.ask("q-1", "I lost my card")
        widget.receive_until(lambda f: f["type"] == "bot.delta")
        # The peer vanishes without a closing handshake: a reset, as when a
        # laptop's network goes.
        raw = widget.ws.socket
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()

        # The customer comes back: the answer is there once it is stored.
        deadline = time.monotonic() + 20
        answer = None
        while answer is None and time.monotonic() < deadline:
            returning = servers.Widget(port, widget.token)
            returning.send({"type": "resume", "after_seq": ack["seq"]})
            frame = returning.receive_until(
                lambda f: servers.is_bot_message(f) or f["type"] == "resumed"
            )
            answer = frame if servers.is_bot_message(frame) else None
            returning.close()
            time.sleep(0.2)
    finally:
        servers.stop(server)

    assert answer is not None, "the answer was never stored"
    assert answer["reply_to"] == ack["seq"]
    assert answer["text"].startswith("Freeze the card in the app")
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text
