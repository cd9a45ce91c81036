import asyncio
import logging
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support_bot.settings")
# Django must be set up before the consumers import models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from conversations import replies  # noqa: E402
from conversations.consumers import WidgetConsumer  # noqa: E402
from escalation.consumers import AgentConsumer  # noqa: E402
from support_bot import live  # noqa: E402
from support_bot.origins import SameOriginValidator  # noqa: E402

logger = logging.getLogger(__name__)


class SafeOriginValidator(OriginValidator):  # type: ignore[misc]
    """OriginValidator that refuses, rather than fails on, a malformed Origin,
    and reads the allowed origins from the named setting on each handshake,
    so that changed settings (tests, say) apply."""

    def __init__(self, application: Any, setting: str) -> None:
        # Not OriginValidator's __init__, which keeps a fixed list.
        self.application = application
        self.setting = setting

    @property
    def allowed_origins(self) -> list[str]:
        return list(getattr(settings, self.setting))

    def valid_origin(self, parsed_origin: object) -> bool:
        try:
            return bool(super().valid_origin(parsed_origin))
        except ValueError:  # e.g. a port that is not a number
            return False


websocket = URLRouter(
    [
        # The widget runs on customers' sites: it accepts the origins the
        # operator lists, and knows visitors by token, never by cookie.
        path(
            "ws/widget/",
            SafeOriginValidator(WidgetConsumer.as_asgi(), "WIDGET_ALLOWED_ORIGINS"),
        ),
        # The console is ours alone: a page of this server (its own scheme,
        # host and port; see origins.py), a signed-in session.
        path(
            "ws/agent/",
            SameOriginValidator(AuthMiddlewareStack(AgentConsumer.as_asgi())),
        ),
    ]
)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The web process's start and stop (ASGI lifespan).

    At a stop (SIGTERM: a deploy, a restart) the server has closed the
    sockets and waits here while the answers still being written are
    finished and stored, so that a restart loses none: the widgets reconnect,
    to this process's successor or another, and find them stored. The wait
    is bounded by the time an answer can take; an answer cut short even so
    is answered again later (conversations/recovery.py).
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                async with asyncio.timeout(settings.STRANDED_ANSWER_SECONDS):
                    await replies.drain()
                    await live.flush()
            except TimeoutError:
                logger.warning("Stopped before every answer being written was stored")
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": websocket, "lifespan": lifespan}
)
