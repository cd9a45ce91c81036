"""An email address left for a reply is held to the limits mail servers
keep: 64 characters before the @, 254 in all."""

from typing import Any

import pytest

from conversations.models import Message, Visitor
from tests.widget import receive_until, resume

LONG_DOMAIN = ".".join(c * 63 for c in "bcd") + ".com"


async def leave(widget: Any, email: str) -> dict[str, Any]:
    await widget.send_json_to({"type": "contact", "email": email})
    frames = await receive_until(
        widget, lambda f: f["type"] in ("contact.saved", "error")
    )
    return frames[-1]


@pytest.mark.parametrize(
    ("email", "says"),
    [
        pytest.param("a" * 240 + "@example.com", "before the @", id="local-240"),
        pytest.param("a" * 65 + "@example.com", "before the @", id="local-65"),
        pytest.param("a" * 60 + "@" + LONG_DOMAIN, "at most 254", id="address-256"),
    ],
)
async def test_an_address_past_the_limits_is_refused(
    connect: Any, email: str, says: str
) -> None:
    widget = await connect()

    refused = await leave(widget, email)
    saved = await leave(widget, "a" * 64 + "@example.com")

    assert (refused["type"], refused.get("code")) == ("error", "invalid_email")
    assert says in refused["message"]
    assert saved["type"] == "contact.saved"
    assert (await Visitor.objects.aget()).email == "a" * 64 + "@example.com"


async def test_the_same_address_twice_is_announced_once(connect: Any) -> None:
    widget = await connect()
    await resume(widget)
    await widget.send_json_to({"type": "request_human"})
    await receive_until(widget, lambda f: f["type"] == "queue")

    for email in [
        "dana@example.com",
        "dana@example.com",
        "Dana@Example.com",
        "sam@example.com",
    ]:
        assert (await leave(widget, email))["type"] == "contact.saved"

    notices = Message.objects.filter(text__startswith="Thanks, we'll also reply")
    assert await notices.acount() == 2
    assert (await Visitor.objects.aget()).email == "sam@example.com"
