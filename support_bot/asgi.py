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

from conversations.consumers import WidgetConsumer  # noqa: E402
from escalation.consumers import AgentConsumer  # noqa: E402


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
        # The console is ours alone: our own host, a signed-in session.
        path(
            "ws/agent/",
            SafeOriginValidator(
                AuthMiddlewareStack(AgentConsumer.as_asgi()), "ALLOWED_HOSTS"
            ),
        ),
    ]
)

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket})
