"""Parsing and checking client frames of the widget protocol (docs/protocol.md).

Every way a frame can be wrong ends in `FrameError` with a protocol error code
and a sentence a person can read; nothing is stored from a rejected frame.
"""

import json
import re
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

MAX_FRAME_BYTES = 64 * 1024
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIENT_TYPES = frozenset(
    {
        "hello",
        "resume",
        "message",
        "typing",
        "feedback",
        "request_human",
        "contact",
        "rate",
    }
)
MAX_RATING_COMMENT = 1000


class FrameError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def as_frame(self) -> dict[str, Any]:
        return {
            "type": "error",
            "code": self.code,
            "message": self.message,
            **self.extra,
        }


def decode(text: str | None, types: frozenset[str] = CLIENT_TYPES) -> dict[str, Any]:
    """The frame as a dict whose `type` is one of `types`."""
    if text is None:
        raise FrameError("bad_json", "Frames must be JSON text, not binary.")
    if len(text.encode()) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", "That frame is too large to process.")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("bad_json", "That frame is not valid JSON.") from None
    if "\\u" in text and not _well_formed(frame):
        # JSON may escape lone surrogates ("\ud83d", half an emoji cut off),
        # which no database or tokenizer accepts: refused here, for every
        # field at once, naming the message so the widget can settle it.
        raise FrameError(
            "bad_json",
            "That frame has text that is not valid Unicode (half an emoji?).",
            **_client_id_of(frame),
        )
    if not isinstance(frame, dict):
        raise FrameError("bad_json", "A frame must be a JSON object.")
    kind = frame.get("type")
    if not isinstance(kind, str) or kind not in types:
        raise FrameError("unknown_type", "That frame type is not part of the protocol.")
    return frame


# json.loads joins escaped surrogate pairs into one character: what is left
# in a string is a lone half.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _well_formed(frame: Any) -> bool:
    """Whether no string in `frame`, keys included, has a lone surrogate."""
    values = [frame]
    while values:
        value = values.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return False
        elif isinstance(value, dict):
            values += value.keys()
            values += value.values()
        elif isinstance(value, list):
            values += value
    return True


def _client_id_of(frame: Any) -> dict[str, str]:
    """The frame's client_id, when it has a valid one, as an error's extra."""
    client_id = frame.get("client_id") if isinstance(frame, dict) else None
    if isinstance(client_id, str) and CLIENT_ID.fullmatch(client_id):
        return {"client_id": client_id}
    return {}


@dataclass(frozen=True)
class CustomerMessage:
    client_id: str
    text: str


def parse_message(frame: dict[str, Any]) -> CustomerMessage:
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise FrameError(
            "invalid_frame",
            "A message needs a client_id of 1 to 64 letters, digits, - or _.",
        )
    text = clean_text(frame.get("text"), "message", client_id=client_id)
    return CustomerMessage(client_id, text)


def clean_text(value: object, what: str, limit: int | None = None, **extra: Any) -> str:
    """Text a person typed, as it is stored: no NUL, no space around it.

    For every text people write, customers and agents alike. Refused when it
    is not text, is longer than `limit` (MAX_MESSAGE_CHARS unless given), or
    has nothing visible left; `what` names it in the error ("message",
    "note"), and `extra` goes with the error (the client_id it answers).
    """
    if not isinstance(value, str):
        raise FrameError("invalid_frame", f"The {what} must be text.", **extra)
    # NUL cannot be stored in PostgreSQL text; nobody types one on purpose.
    text = value.replace("\x00", "").strip()
    if limit is None:
        limit = settings.MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise FrameError(
            "message_too_long",
            f"A {what} can be at most {limit} characters long.",
            **extra,
        )
    if not _visible(text):
        raise FrameError("empty_message", f"That {what} is empty.", **extra)
    return text


def _visible(text: str) -> bool:
    """Whether anything but spaces and invisible format characters is left."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)


def parse_token(frame: dict[str, Any]) -> str | None:
    token = frame.get("token")
    if token is not None and not isinstance(token, str):
        raise FrameError("invalid_frame", "The token must be a string or null.")
    return token[:128] if token else None


def parse_after_seq(frame: dict[str, Any]) -> int:
    kind = frame.get("type") if isinstance(frame.get("type"), str) else "resume"
    return _non_negative_int(frame, "after_seq", f"{kind} needs after_seq, 0 or more.")


def parse_feedback(frame: dict[str, Any]) -> tuple[int, str]:
    seq = _non_negative_int(frame, "seq", "feedback needs the seq of a bot message.")
    rating = frame.get("rating")
    if rating not in ("up", "down"):
        raise FrameError("invalid_frame", 'The rating must be "up" or "down".')
    return seq, rating


def parse_rate(frame: dict[str, Any]) -> tuple[int, str]:
    score = frame.get("score")
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise FrameError("invalid_frame", "rate needs a score from 1 to 5.")
    comment = frame.get("comment", "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise FrameError("invalid_frame", "The comment must be text.")
    comment = comment.replace("\x00", "").strip()
    if len(comment) > MAX_RATING_COMMENT:
        raise FrameError(
            "invalid_frame",
            f"A comment can be at most {MAX_RATING_COMMENT} characters long.",
        )
    return score, comment


def parse_typing(frame: dict[str, Any]) -> bool:
    active = frame.get("active")
    if not isinstance(active, bool):
        raise FrameError("invalid_frame", "typing needs active, true or false.")
    return active


def _non_negative_int(frame: dict[str, Any], key: str, message: str) -> int:
    value = frame.get(key)
    # bool is an int in Python; true is not a sequence number.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FrameError("invalid_frame", message)
    return value


_visitor_limiters: "OrderedDict[Any, RateLimiter]" = OrderedDict()


def limiter_for(visitor_id: Any, burst: int, rate: float) -> "RateLimiter":
    """One bucket per visitor, shared by all of the visitor's sockets here.

    Kept for the most recent visitors only. Across web processes each process
    counts on its own, so a visitor whose tabs land on different processes
    gets the limit once per process.
    """
    limiter = _visitor_limiters.pop(visitor_id, None)
    if limiter is None or (limiter.burst, limiter.rate) != (burst, rate):
        limiter = RateLimiter(burst, rate)
    _visitor_limiters[visitor_id] = limiter
    while len(_visitor_limiters) > 10_000:
        _visitor_limiters.popitem(last=False)
    return limiter


class RateLimiter:
    """A token bucket: `burst` messages at once, refilled at `rate` a second."""

    def __init__(self, burst: int, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> float:
        """0 when allowed (one token used), else seconds until the next token."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
