import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support_bot.settings")
# Django must be set up before the consumers import models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from conversations.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The widget runs on customers' sites, so its socket accepts the
        # origins the operator lists, not only our own host.
        "websocket": OriginValidator(
            URLRouter(websocket_urlpatterns), settings.WIDGET_ALLOWED_ORIGINS
        ),
    }
)
