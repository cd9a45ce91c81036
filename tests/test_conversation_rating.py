"""The customer rates the whole conversation from 1 to 5 through the widget."""

from typing import Any

from oversight.models import ConversationRating
from tests.conftest import Connect
from tests.widget import Frame, ask, receive_until


def is_rate_answer(frame: Frame) -> bool:
    # Typing and status frames of the answer before can still be arriving.
    return frame["type"] in ("rate.saved", "error")


async def test_a_rating_is_saved_and_confirmed(connect: Connect, kb: Any) -> None:
    widget = await connect()
    await ask(widget, "when will my card arrive")

    await widget.send_json_to(
        {"type": "rate", "score": 4, "comment": "  Quick, thanks!  "}
    )
    saved = (await receive_until(widget, is_rate_answer))[-1]

    rating = await ConversationRating.objects.select_related("conversation").aget()
    assert saved == {
        "type": "rate.saved",
        "conversation": str(rating.conversation_id),
        "score": 4,
        "comment": "Quick, thanks!",
    }
    assert (rating.score, rating.comment) == (4, "Quick, thanks!")


async def test_rating_again_replaces_the_rating(connect: Connect, kb: Any) -> None:
    widget = await connect()
    await ask(widget, "when will my card arrive")

    for score in (2, 5):
        await widget.send_json_to({"type": "rate", "score": score})
        assert (await receive_until(widget, is_rate_answer))[-1]["score"] == score

    ratings = [r async for r in ConversationRating.objects.all()]
    assert [(r.score, r.comment) for r in ratings] == [(5, "")]


async def test_bad_ratings_are_refused(connect: Connect, kb: Any) -> None:
    widget = await connect()
    await ask(widget, "when will my card arrive")

    for frame in (
        {"score": 0},
        {"score": 6},
        {"score": True},
        {"score": "5"},
        {"score": 3, "comment": 7},
        {"score": 3, "comment": "x" * 1001},
    ):
        await widget.send_json_to({"type": "rate", **frame})
        error = (await receive_until(widget, is_rate_answer))[-1]
        assert (error["type"], error["code"]) == ("error", "invalid_frame"), frame

    assert not await ConversationRating.objects.aexists()


async def test_a_visitor_without_a_conversation_has_nothing_to_rate(
    connect: Connect,
) -> None:
    widget = await connect()

    await widget.send_json_to({"type": "rate", "score": 5})

    error = await widget.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "not_found")
