"""Helpers for talking to the widget socket in tests."""

import itertools
from collections.abc import Callable
from typing import Any

from channels.testing import WebsocketCommunicator

Frame = dict[str, Any]
_ids = itertools.count(1)


def new_client_id() -> str:
    return f"test-{next(_ids)}"


async def receive_until(
    communicator: WebsocketCommunicator,
    done: Callable[[Frame], bool],
    seconds: float = 10,
) -> list[Frame]:
    """Every frame received up to and including the first that satisfies `done`."""
    frames: list[Frame] = []
    while True:
        frame: Frame = await communicator.receive_json_from(timeout=seconds)
        frames.append(frame)
        if done(frame):
            return frames


def is_bot_message(frame: Frame) -> bool:
    return bool(frame["type"] == "message" and frame["role"] == "bot")


async def ask(
    communicator: WebsocketCommunicator, text: str, client_id: str | None = None
) -> list[Frame]:
    """Send a customer message and collect frames up to the bot's stored answer."""
    await communicator.send_json_to(
        {"type": "message", "client_id": client_id or new_client_id(), "text": text}
    )
    frames = await receive_until(
        communicator, lambda f: is_bot_message(f) or f["type"] == "error"
    )
    assert frames[-1]["type"] != "error", frames[-1]
    return frames


async def resume(
    communicator: WebsocketCommunicator, after_seq: int = 0
) -> list[Frame]:
    await communicator.send_json_to({"type": "resume", "after_seq": after_seq})
    frames = await receive_until(communicator, lambda f: f["type"] == "resumed")
    # The status frame follows `resumed`.
    frames.append(await communicator.receive_json_from())
    return frames


async def settle(communicator: WebsocketCommunicator) -> list[Frame]:
    """Frames still arriving until the socket has been quiet for a moment."""
    frames: list[Frame] = []
    while not await communicator.receive_nothing(timeout=0.3):
        frames.append(await communicator.receive_json_from())
    return frames


def stored_frames(frames: list[Frame]) -> list[Frame]:
    """The frames that carry or confirm stored messages, not typing or status."""
    return [f for f in frames if f["type"] in ("message", "ack", "bot.delta")]
