"""Which pages may open the agent console's websocket.

The console's socket is signed in by the session cookie, which a browser sends
whichever page opens the socket: to the server, the handshake is a request a
page of another site could forge, as a form post is. It is checked as Django
checks unsafe requests (CsrfViewMiddleware): the page's Origin must be this
server's own, the scheme and the Host the request came with (a host that
ALLOWED_HOSTS accepts), or be listed in CSRF_TRUSTED_ORIGINS. The admin's
forms and the console so trust the same pages, and another port of the same
host (a different origin, and maybe a different program) is refused.

The scheme is compared too: an http page of our own host can be one that a
network attacker wrote. Behind a TLS-terminating proxy the socket arrives as
plain ws while the page was https; it is seen as secure when uvicorn trusts
the proxy's X-Forwarded-Proto (its FORWARDED_ALLOW_IPS) or Django's
SECURE_PROXY_SSL_HEADER says so, and otherwise the https origin must be in
CSRF_TRUSTED_ORIGINS, as it must already be for the admin's login form.
"""

import io
import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)


class SameOriginValidator:
    """Passes a websocket handshake on only from a page of this server."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        request = handshake_request(scope)
        origin = request.headers.get("Origin")
        if origin is not None and origin_is_ours(request, origin):
            return await self.application(scope, receive, send)
        logger.warning(
            "Refused a console socket from origin %s for host %s",
            origin,
            request.headers.get("Host"),
        )
        return await WebsocketDenier()(scope, receive, send)


def handshake_request(scope: dict[str, Any]) -> HttpRequest:
    """The handshake as Django reads an HTTP request, so that its Host, scheme
    and proxy headers mean what they mean for the console's page."""
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())


def origin_is_ours(request: HttpRequest, origin: str) -> bool:
    try:
        own = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except DisallowedHost:
        own = None
    if origin == own:
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in (o for o in trusted if "*" not in o):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    # "https://*.example.com" trusts example.com's subdomains, as for CSRF.
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in (urlsplit(o) for o in trusted if "*" in o)
        if pattern.scheme == parsed.scheme
    )
