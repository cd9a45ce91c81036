import os

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
    """OriginValidator that refuses, rather than fails on, a malformed Origin."""

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
            SafeOriginValidator(
                WidgetConsumer.as_asgi(), settings.WIDGET_ALLOWED_ORIGINS
            ),
        ),
        # The console is ours alone: our own host, a signed-in session.
        path(
            "ws/agent/",
            SafeOriginValidator(
                AuthMiddlewareStack(AgentConsumer.as_asgi()), settings.ALLOWED_HOSTS
            ),
        ),
    ]
)

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket})
