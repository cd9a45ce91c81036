"""A websocket load generator that speaks the widget protocol (docs/protocol.md).

Each simulated widget does what the real one does on a page: `hello`, `resume`,
then customer messages one at a time, each time waiting for the bot's stored
answer (`message` with `reply_to` the acked seq) before typing the next. Times
are taken on this side of the socket, so they include the client's own share
of the two cores; on a loaded machine they are upper bounds of server time.

The client offers permessage-deflate, as browsers do, and never pings (the
server pings idle sockets itself).
"""

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

Frame = dict[str, Any]
ORIGIN = Origin("http://127.0.0.1")
ANSWER_TIMEOUT = 30.0
OPEN_TIMEOUT = 60.0
# Handshakes in flight at once while opening many idle sockets; more only
# queues them in the server's accept backlog.
OPENING_AT_ONCE = 100

QUESTIONS = [
    "My card still hasn't arrived, where is it?",
    "How long does a transfer to another bank take?",
    "Can I top up my account with a credit card?",
    "I forgot my passcode, how do I reset it?",
    "Why was my card payment declined?",
    "How do I change my address in the app?",
    "Is there a fee for withdrawing cash abroad?",
    "How can I freeze my card?",
]

_client_ids = itertools.count(1)


class ProtocolError(Exception):
    """The server answered with an error frame or closed unexpectedly."""


@dataclass(frozen=True)
class Sample:
    """One answer as the asking widget saw it, in seconds from sending."""

    first_delta: float | None
    final: float


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Wall time of the messaging phase only; connecting is not timed.
    seconds: float = 0.0

    @property
    def answers_per_second(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0


class Widget:
    """One open widget: a socket and what the server said about the visitor."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.token: str | None = None

    @classmethod
    async def open(cls, url: str, token: str | None = None) -> "Widget":
        ws = await connect(
            url,
            origin=ORIGIN,
            proxy=None,
            ping_interval=None,
            open_timeout=OPEN_TIMEOUT,
        )
        widget = cls(ws)
        await widget.send({"type": "hello", "token": token})
        welcome = await widget.receive_until(lambda f: f["type"] == "welcome")
        widget.token = welcome.get("token")
        await widget.send({"type": "resume", "after_seq": welcome.get("last_seq", 0)})
        await widget.receive_until(lambda f: f["type"] == "resumed")
        return widget

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def receive(self) -> Frame:
        frame: Frame = json.loads(await self.ws.recv())
        if frame["type"] == "error":
            raise ProtocolError(frame.get("code", "error"))
        return frame

    async def receive_until(self, done: Callable[[Frame], bool]) -> Frame:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while not done(frame := await self.receive()):
                pass
            return frame

    async def ask(self, text: str) -> Sample:
        """Send one customer message and wait for the bot's stored answer."""
        client_id = f"bench-{next(_client_ids)}"
        sent = time.perf_counter()
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return await self.await_answer(sent)

    async def await_answer(self, sent: float, acked: bool = True) -> Sample:
        """The next answer's timing; `acked` when this widget asked the question.

        The asking widget learns the question's seq from its `ack` and matches
        the answer by `reply_to`; another tab of the visitor, which gets no
        `ack`, takes the next bot answer (one question is open at a time).
        """
        expected: int | None = None
        first_delta: float | None = None
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while True:
                frame = await self.receive()
                kind = frame["type"]
                if kind == "ack" and acked:
                    expected = frame["seq"]
                elif kind == "bot.delta" and first_delta is None:
                    if expected is None or frame["reply_to"] == expected:
                        first_delta = time.perf_counter() - sent
                elif _is_answer(frame, expected):
                    return Sample(first_delta, time.perf_counter() - sent)

    async def close(self) -> None:
        await self.ws.close()


def _is_answer(frame: Frame, expected: int | None) -> bool:
    if frame["type"] != "message" or frame.get("role") != "bot":
        return False
    reply_to = frame.get("reply_to")
    return reply_to is not None and (expected is None or reply_to == expected)


async def run_load(url: str, conversations: int, messages: int) -> LoadResult:
    """`conversations` widgets at once, each asking `messages` questions in turn."""
    result = LoadResult()
    opened = await asyncio.gather(
        *(Widget.open(url) for _ in range(conversations)), return_exceptions=True
    )
    widgets = [w for w in opened if isinstance(w, Widget)]
    result.errors += [repr(e) for e in opened if not isinstance(e, Widget)]

    async def converse(number: int, widget: Widget) -> None:
        for turn in range(messages):
            question = QUESTIONS[(number + turn) % len(QUESTIONS)]
            try:
                result.samples.append(await widget.ask(question))
            except (ProtocolError, TimeoutError, OSError) as error:
                result.errors.append(repr(error))
                return

    started = time.perf_counter()
    await asyncio.gather(*(converse(n, w) for n, w in enumerate(widgets)))
    result.seconds = time.perf_counter() - started
    await close_all(widgets)
    return result


@dataclass
class TwoTabResult:
    """The same visitor in two tabs, each on its own web process."""

    asked: int = 0
    # Answers the other tab received live (not by a later replay).
    other_tab_live: int = 0
    other_tab_deltas: int = 0
    asking: list[Sample] = field(default_factory=list)
    other: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def run_two_tabs(
    url_a: str, url_b: str, visitors: int, messages: int
) -> TwoTabResult:
    """Each visitor asks in a tab on `url_a`; a tab on `url_b` must see the answer.

    The second tab shares the visitor's token, so it is the same customer on a
    second web process: whatever it receives crossed the Redis channel layer.
    """
    result = TwoTabResult()

    async def visitor(number: int) -> None:
        first = await Widget.open(url_a)
        second = await Widget.open(url_b, first.token)
        try:
            for turn in range(messages):
                question = QUESTIONS[(number + turn) % len(QUESTIONS)]
                client_id = f"bench-{next(_client_ids)}"
                sent = time.perf_counter()
                result.asked += 1
                other = asyncio.create_task(second.await_answer(sent, acked=False))
                await first.send(
                    {"type": "message", "client_id": client_id, "text": question}
                )
                result.asking.append(await first.await_answer(sent))
                try:
                    seen = await other
                except TimeoutError:
                    result.errors.append("the second tab got no answer in time")
                    continue
                result.other.append(seen)
                result.other_tab_live += 1
                result.other_tab_deltas += seen.first_delta is not None
        finally:
            await close_all([first, second])

    outcomes = await asyncio.gather(
        *(visitor(n) for n in range(visitors)), return_exceptions=True
    )
    result.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return result


async def open_idle(url: str, count: int, held: list[Widget]) -> list[str]:
    """Open `count` more widgets that stay idle, appending them to `held`."""
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            try:
                held.append(await Widget.open(url))
            except (ProtocolError, TimeoutError, OSError) as error:
                errors.append(repr(error))

    await asyncio.gather(*(one() for _ in range(count)))
    return errors


async def close_all(widgets: list[Widget]) -> None:
    gate = asyncio.Semaphore(OPENING_AT_ONCE * 2)

    async def one(widget: Widget) -> None:
        async with gate:
            await widget.close()

    await asyncio.gather(*(one(w) for w in widgets), return_exceptions=True)


async def each_turn(
    widget: Widget, turns: int, after: Callable[[int, Sample], Awaitable[None]]
) -> None:
    """Ask `turns` questions in one conversation, calling `after` on each answer."""
    for turn in range(1, turns + 1):
        sample = await widget.ask(QUESTIONS[turn % len(QUESTIONS)])
        await after(turn, sample)


@dataclass
class AgentResult:
    """Customers on one web process, their agent's console on another."""

    customers: int = 0
    # Seconds from sending to the other side's socket receiving the message.
    to_agent: list[float] = field(default_factory=list)
    to_customer: list[float] = field(default_factory=list)
    sent_each_way: int = 0
    errors: list[str] = field(default_factory=list)


class Console:
    """The agent console's socket, with a reader that sorts frames by conversation."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inboxes: dict[str, asyncio.Queue[Frame]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, origin: str, cookie: str) -> "Console":
        ws = await connect(
            url,
            origin=Origin(origin),
            additional_headers={"Cookie": cookie},
            proxy=None,
            ping_interval=None,
            open_timeout=60,
        )
        console = cls(ws)
        await console.send({"type": "heartbeat"})
        return console

    def inbox(self, conversation: str) -> "asyncio.Queue[Frame]":
        return self.inboxes.setdefault(conversation, asyncio.Queue())

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def _read(self) -> None:
        async for raw in self.ws:
            frame: Frame = json.loads(raw)
            conversation = frame.get("conversation")
            if isinstance(conversation, str):
                await self.inbox(conversation).put(frame)

    async def receive_until(
        self, conversation: str, done: Callable[[Frame], bool]
    ) -> Frame:
        inbox = self.inbox(conversation)
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while True:
                frame = await inbox.get()
                if frame["type"] == "error":
                    raise ProtocolError(frame.get("code", "error"))
                if done(frame):
                    return frame

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


async def run_agent(
    widget_url: str,
    console_url: str,
    console_origin: str,
    cookie: str,
    customers: int,
    messages: int,
) -> AgentResult:
    """Customers on `widget_url` ask for a person; one agent on `console_url`
    takes every conversation, and the two sides exchange `messages` each way.

    Every message crosses the Redis channel layer between the two processes;
    a message that does not arrive live within the timeout counts as an error.
    """
    result = AgentResult(customers=customers)
    console = await Console.open(console_url, console_origin, cookie)

    async def customer(number: int) -> None:
        widget = await Widget.open(widget_url)
        try:
            await widget.send({"type": "request_human"})
            status = await widget.receive_until(
                lambda f: f["type"] == "status" and f["status"] == "waiting"
            )
            conversation = status["conversation"]
            await console.send({"type": "claim", "conversation": conversation})
            await console.send(
                {"type": "open", "conversation": conversation, "after_seq": 0}
            )
            await widget.receive_until(
                lambda f: f["type"] == "status" and f["status"] == "human"
            )
            for turn in range(messages):
                text = f"{QUESTIONS[(number + turn) % len(QUESTIONS)]} ({turn})"
                sent = time.perf_counter()
                await widget.send(
                    {
                        "type": "message",
                        "client_id": f"bench-{next(_client_ids)}",
                        "text": text,
                    }
                )
                await console.receive_until(conversation, _message_saying(text))
                result.to_agent.append(time.perf_counter() - sent)

                reply = f"Thanks, looking into it ({number}.{turn})"
                sent = time.perf_counter()
                await console.send(
                    {
                        "type": "reply",
                        "conversation": conversation,
                        "client_id": f"bench-agent-{next(_client_ids)}",
                        "text": reply,
                    }
                )
                await widget.receive_until(_message_saying(reply))
                result.to_customer.append(time.perf_counter() - sent)
                result.sent_each_way += 1
            await console.send({"type": "resolve", "conversation": conversation})
        finally:
            await widget.close()

    try:
        outcomes = await asyncio.gather(
            *(customer(n) for n in range(customers)), return_exceptions=True
        )
    finally:
        await console.close()
    result.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return result


def _message_saying(text: str) -> Callable[[Frame], bool]:
    return lambda frame: frame["type"] == "message" and frame.get("text") == text
