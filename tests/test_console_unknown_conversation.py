"""A console frame naming a conversation that does not exist gets not_found,
and one whose id is not a conversation id gets invalid_frame; never a
server_error, and the socket stays usable."""

import uuid
from typing import Any

from asgiref.sync import sync_to_async

from tests.agents import make_agent, open_console, receive_type
from tests.widget import settle

# Every client frame with a `conversation`. `close` and a "stopped typing"
# are answered by nothing when it names no conversation: there is nothing to
# leave, and no one to tell.
ANSWERED: list[dict[str, Any]] = [
    {"type": "open", "after_seq": 0},
    {"type": "claim"},
    {"type": "reply", "client_id": "r1", "text": "Hello"},
    {"type": "note", "text": "VIP"},
    {"type": "suggest"},
    {"type": "resolve"},
    {"type": "hand_back"},
    {"type": "transfer"},
    {"type": "save_article", "seq": 1, "title": "Greetings"},
    {"type": "typing", "active": True},
]
UNANSWERED: list[dict[str, Any]] = [
    {"type": "close"},
    {"type": "typing", "active": False},
]


async def test_frames_for_an_unknown_conversation_get_typed_errors(
    connect: Any,
) -> None:
    dana = await sync_to_async(make_agent)("dana")
    console = await open_console(dana)
    assert (await console.connect())[0]
    await settle(console)
    unknown = str(uuid.uuid4())

    answers = {}
    for frame in ANSWERED:
        # A transfer to Dana, who exists: only the conversation is unknown.
        await console.send_json_to({**frame, "conversation": unknown, "agent": dana.pk})
        error = await receive_type(console, "error")
        answers[frame["type"]] = (error["code"], error.get("conversation"))
    for malformed in ["not-a-uuid", 42, None]:
        for frame in [*ANSWERED, *UNANSWERED]:
            await console.send_json_to({**frame, "conversation": malformed})
            error = await receive_type(console, "error")
            assert error["code"] == "invalid_frame", (frame, malformed)

    assert answers == {f["type"]: ("not_found", unknown) for f in ANSWERED}
    await console.send_json_to({"type": "heartbeat"})
    await receive_type(console, "heartbeat")
