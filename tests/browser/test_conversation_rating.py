"""After a bot answer, closing the panel asks for a 1 to 5 rating, which works
from the keyboard and reaches the server."""

from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

pytestmark = pytest.mark.browser

Frames = list[tuple[str, dict[str, Any]]]


def ask_and_close(page: Page) -> Locator:
    """Ask the bot a question, close the panel, and find the rating card."""
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("button", name="Talk to a person")).to_be_enabled()
    page.get_by_label("Message").fill("My card still hasn't arrived")
    page.get_by_label("Message").press("Enter")
    expect(page.locator(".log .item-bot")).to_have_count(1)
    page.keyboard.press("Escape")
    card = page.get_by_role("group", name="Rate this conversation")
    expect(card).to_be_visible()
    return card


def test_closing_after_an_answer_asks_for_a_rating_once(
    page: Page, frames: Frames
) -> None:
    card = ask_and_close(page)
    page.get_by_role("radio", name="1 out of 5").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="4 out of 5")).to_have_attribute(
        "aria-checked", "true"
    )
    card.get_by_label("Comment (optional)").fill("<b>Quick</b>, thanks")
    card.get_by_role("button", name="Send").click()

    expect(card).to_contain_text("Thank you for your rating!")
    # Only the thanks stays, not a form that can no longer be sent (looked at
    # once, at once: the whole card goes two seconds later).
    assert not card.get_by_role("radio", name="4 out of 5").is_visible()
    assert not card.get_by_role("button", name="Send").is_visible()
    expect(card).to_be_hidden()
    rated = [f for way, f in frames if way == "sent" and f["type"] == "rate"]
    assert rated == [{"type": "rate", "score": 4, "comment": "<b>Quick</b>, thanks"}]
    page.get_by_role("button", name="Open chat").click()
    page.keyboard.press("Escape")
    expect(card).to_be_hidden()


def test_a_rating_left_unanswered_is_asked_again_until_declined(
    page: Page,
) -> None:
    card = ask_and_close(page)

    # The customer goes on to another page of the site without answering.
    page.reload()
    expect(page.locator(".log .item-bot")).to_have_count(1)
    expect(card).to_be_hidden()
    page.get_by_role("button", name="Open chat").click()
    page.keyboard.press("Escape")
    expect(card).to_be_visible()
    # From the launcher, where Escape left the focus, Tab reaches the card.
    expect(page.get_by_role("button", name="Open chat")).to_be_focused()
    page.keyboard.press("Tab")
    expect(card.get_by_role("radio", name="1 out of 5")).to_be_focused()

    card.get_by_role("button", name="No thanks").click()
    expect(card).to_be_hidden()
    page.reload()
    page.get_by_role("button", name="Open chat").click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Open chat")).to_be_visible()
    expect(card).to_be_hidden()
