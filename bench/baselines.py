"""Two bare Channels consumers to hold the chat path up against.

    uvicorn bench.baselines:application --ws-max-size 1048576 --no-access-log

- `/ws/echo/`: answers each customer message with one bot `message` frame.
- `/ws/insert/`: the same, after writing one row per message to PostgreSQL
  through the ORM, on the same database thread pool the product uses.

They speak just enough of the widget protocol (hello, resume, message) for the
load generator to drive them exactly as it drives the product, and run with the
product's settings (same database, same Redis channel layer configured), so the
only difference is the work done per message.
"""

import json
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support_bot.settings")
get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench.echo_table import EchoRow  # noqa: E402
from bench.querycount import ASGIApp, with_stats  # noqa: E402
from support_bot.db import db_async  # noqa: E402


def store_row(text: str) -> None:
    EchoRow.objects.create(text=text)


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    writes = False

    async def connect(self) -> None:
        self.seq = 0
        await self.accept()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        frame: dict[str, Any] = json.loads(text_data or "{}")
        kind = frame.get("type")
        if kind == "hello":
            reply: dict[str, Any] = {"type": "welcome", "token": "bench"}
        elif kind == "resume":
            reply = {"type": "resumed", "last_seq": self.seq}
        elif kind == "message":
            reply = await self.answer(frame)
        else:
            reply = {"type": "error", "code": "unknown_type"}
        await self.send(text_data=json.dumps(reply))

    async def answer(self, frame: dict[str, Any]) -> dict[str, Any]:
        text = str(frame.get("text", ""))
        if self.writes:
            await db_async(store_row)(text)
        # The customer's message and the answer each take a seq, as in the product.
        self.seq += 2
        return {
            "type": "message",
            "seq": self.seq,
            "role": "bot",
            "text": text,
            "reply_to": self.seq - 1,
        }


class InsertEchoConsumer(EchoConsumer):
    writes = True


application: ASGIApp = with_stats(
    ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [
                    path("ws/echo/", EchoConsumer.as_asgi()),
                    path("ws/insert/", InsertEchoConsumer.as_asgi()),
                ]
            )
        }
    )
)
