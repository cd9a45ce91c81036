"""Helpers for tests with support agents and their console socket."""

from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.test import Client

from escalation.actions import record_heartbeat
from escalation.models import AGENTS_GROUP, AgentProfile
from support_bot.asgi import application

ORIGIN = b"http://127.0.0.1:8000"
HOST = b"127.0.0.1:8000"


def make_agent(username: str, capacity: int = 3, online: bool = True) -> User:
    user = User.objects.create_user(
        username, password="pw", first_name=username.title()
    )
    group, _ = Group.objects.get_or_create(name=AGENTS_GROUP)
    user.groups.add(group)
    AgentProfile.objects.create(user=user, capacity=capacity)
    if online:
        record_heartbeat(user)
    return user


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_console(
    user: User | None,
    origin: bytes | None = ORIGIN,
    host: bytes = HOST,
    headers: list[tuple[bytes, bytes]] | None = None,
    app: Any = application,
) -> WebsocketCommunicator:
    """The console's socket, as the console's page at `host` opens it."""
    sent = [(b"host", host), *(headers or [])]
    if origin is not None:
        sent.append((b"origin", origin))
    if user is not None:
        sent.append((b"cookie", await sync_to_async(session_cookie)(user)))
    return WebsocketCommunicator(app, "/ws/agent/", headers=sent)


async def receive_type(
    console: WebsocketCommunicator, kind: str, **match: Any
) -> dict[str, Any]:
    """The next frame of `kind` (whose fields equal `match`), skipping others."""
    while True:
        frame: dict[str, Any] = await console.receive_json_from(timeout=10)
        if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
            return frame


async def take_over(
    widget: WebsocketCommunicator, username: str = "dana"
) -> tuple[WebsocketCommunicator, str]:
    """The customer asks for a person; a new agent signs in and claims the
    conversation. Returns the agent's console and the conversation's id."""
    from tests.widget import receive_until

    await widget.send_json_to({"type": "request_human"})
    agent = await sync_to_async(make_agent)(username)
    console = await open_console(agent)
    await console.connect()
    # The queue snapshot on connecting already names it; a live "assigned"
    # event sent while the socket's subscription is being set up can be lost.
    conversation = str(
        (await receive_type(console, "queue"))["items"][0]["conversation"]
    )
    await console.send_json_to({"type": "claim", "conversation": conversation})
    await receive_until(
        widget, lambda f: f["type"] == "status" and f["status"] == "human"
    )
    return console, conversation
