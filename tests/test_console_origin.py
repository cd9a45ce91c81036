"""The console's socket opens only from the console's own page: its scheme,
host and port, or an origin the operator trusts for the admin's forms."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from support_bot.asgi import application
from tests.agents import make_agent, open_console, receive_type

PROXIED = b"support.example.com"


async def handshake(origin: bytes | None, **kwargs: Any) -> bool:
    """Whether a signed-in agent's console opens from a page at `origin`."""
    agent = await User.objects.filter(username="dana").afirst()
    if agent is None:
        agent = await sync_to_async(make_agent)("dana")
    console = await open_console(agent, origin, **kwargs)
    connected, _ = await console.connect()
    if connected:
        await receive_type(console, "queue")
        await console.disconnect()
    return bool(connected)


async def test_console_opens_from_its_own_page(connect: Any) -> None:
    assert await handshake(b"http://127.0.0.1:8000", host=b"127.0.0.1:8000")


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:9999",  # another program on the same host
        b"http://127.0.0.1",  # the same host, port 80
        b"https://127.0.0.1:8000",  # another scheme
        b"http://localhost:8000",  # another host, though an allowed one
        b"http://127.0.0.1:8000.evil.example",
        b"null",
        None,
    ],
)
async def test_console_refuses_any_other_origin(
    connect: Any, origin: bytes | None
) -> None:
    assert not await handshake(origin, host=b"127.0.0.1:8000")


async def test_console_refuses_a_host_that_is_not_allowed(connect: Any) -> None:
    assert not await handshake(b"http://evil.example", host=b"evil.example")


async def test_https_page_behind_a_proxy_uvicorn_trusts(
    connect: Any, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["support.example.com"]
    # What uvicorn puts in front of the application (--proxy-headers).
    behind_proxy = ProxyHeadersMiddleware(application, trusted_hosts="*")
    forwarded = [(b"x-forwarded-proto", b"https")]

    for origin, opens in [
        (b"https://support.example.com", True),
        (b"http://support.example.com", False),
    ]:
        connected = await handshake(
            origin, host=PROXIED, headers=forwarded, app=behind_proxy
        )
        assert connected == opens, origin


async def test_https_page_behind_a_proxy_django_trusts(
    connect: Any, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["support.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    assert await handshake(
        b"https://support.example.com",
        host=PROXIED,
        headers=[(b"x-forwarded-proto", b"https")],
    )
    assert not await handshake(b"https://support.example.com", host=PROXIED)


async def test_origins_trusted_for_the_admins_forms_open_it(
    connect: Any, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["support.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = [
        "https://support.example.com",
        "https://*.example.org",
    ]

    for origin, opens in [
        (b"https://support.example.com", True),
        (b"https://console.example.org", True),
        (b"http://console.example.org", False),
        (b"https://support.example.com:8443", False),
    ]:
        assert await handshake(origin, host=PROXIED) == opens, origin
