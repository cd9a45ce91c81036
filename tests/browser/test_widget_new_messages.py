"""A message that lands out of sight below a long answer gets a marker.

The demo's answer about a missing card is taller than the panel: the widget
keeps the view at its first line, so what arrives next (here the answer to a
question asked in another tab) lands below the fold. What the customer does
here (sending, asking for a person) follows the conversation to its end.
"""

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

pytestmark = pytest.mark.browser

CARD_QUESTION = "My card still hasn't arrived, what should I do?"
WAITING_NOTICE = "I've asked a person from our support team to take over."


def in_view(page: Page, item: Locator, part: str = "all") -> bool:
    """Whether all of `item` (or its "top" or "bottom" edge) is inside the
    visible part of the message list."""
    shown = page.locator(".scroll").bounding_box()
    box = item.bounding_box()
    assert shown is not None and box is not None
    top, bottom = shown["y"], shown["y"] + shown["height"] + 1
    item_top, item_bottom = box["y"], box["y"] + box["height"]
    if part == "top":
        return top <= item_top <= bottom
    if part == "bottom":
        return top <= item_bottom <= bottom
    return top <= item_top and item_bottom <= bottom


def ask(page: Page, question: str) -> None:
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("button", name="Talk to a person")).to_be_enabled()
    page.get_by_label("Message").fill(question)
    page.get_by_label("Message").press("Enter")


def read_a_long_answer(page: Page) -> Locator:
    """The customer reads a long answer from its top."""
    ask(page, CARD_QUESTION)
    answer = page.locator(".log .item-bot")
    expect(answer.locator(".sources")).to_have_count(1)
    assert not in_view(page, answer), "the answer fits: the test proves nothing"
    # The answer itself, read from the top on purpose, is not news.
    expect(page.get_by_role("button", name="New messages")).to_be_hidden()
    return answer


def long_answer_then_another(page: Page, context: BrowserContext) -> None:
    """While the customer reads a long answer, one arrives below it: they
    asked another question in another tab."""
    read_a_long_answer(page)
    other_tab = context.new_page()
    other_tab.goto("/")
    ask(other_tab, "How do I change my PIN?")
    later = page.locator(".log .item-bot").filter(has_text="PIN")
    expect(later).to_have_count(1)
    assert not in_view(page, later)


def test_asking_for_a_person_shows_what_follows(page: Page) -> None:
    read_a_long_answer(page)

    page.get_by_role("button", name="Talk to a person").click()

    notice = page.locator(".log .item-system").filter(has_text=WAITING_NOTICE)
    expect(notice).to_have_count(1)
    expect(page.get_by_role("button", name="New messages")).to_be_hidden()
    assert in_view(page, page.locator(".log > .item").last)


def test_the_marker_is_announced_and_leads_to_the_newest_message(
    page: Page, context: BrowserContext
) -> None:
    long_answer_then_another(page, context)

    # A real button, inside a region that screen readers announce politely.
    marker = page.locator('[aria-live="polite"]').get_by_role(
        "button", name="New messages"
    )
    expect(marker).to_be_visible()
    marker.press("Enter")

    expect(marker).to_be_hidden()
    # The newest message from its first line, as a long answer is shown.
    assert in_view(page, page.locator(".log > .item").last, "top")
    # Focus does not fall out of the widget with the button.
    expect(page.get_by_label("Message")).to_be_focused()


def test_the_marker_goes_once_the_customer_scrolls_to_the_bottom(
    page: Page, context: BrowserContext
) -> None:
    long_answer_then_another(page, context)
    marker = page.get_by_role("button", name="New messages")
    expect(marker).to_be_visible()

    page.locator(".scroll").hover()
    page.mouse.wheel(0, 5000)

    expect(marker).to_be_hidden()
    assert in_view(page, page.locator(".log > .item").last, "bottom")


def test_a_reload_shows_where_the_conversation_stands(page: Page) -> None:
    page.get_by_role("button", name="Open chat").click()
    for question in (CARD_QUESTION, "How do I change my PIN?"):
        page.get_by_label("Message").fill(question)
        page.get_by_label("Message").press("Enter")
    answers = page.locator(".log .item-bot")
    expect(answers.locator(".sources")).to_have_count(2)
    # Taller than the panel: a replay that stopped at its first line would
    # leave the later messages out of sight.
    assert not in_view(page, answers.first)

    page.reload()

    expect(page.locator(".log .item-bot .sources")).to_have_count(2)
    expect(page.locator(".log > .item").last).to_contain_text("PIN")
    expect(page.get_by_role("button", name="New messages")).to_be_hidden()
    below = page.locator(".scroll").evaluate(
        "e => e.scrollHeight - e.scrollTop - e.clientHeight"
    )
    assert below < 2
