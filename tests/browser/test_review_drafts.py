"""Copilot mode, live: the bot's answer waits in the console until Dana sends it.

The admin switches the bot to copilot in the Django admin; the customer asks
through the widget and is told a person is checking the answer; Dana edits the
held draft in the console and sends it, and the customer gets her text as the
bot's answer.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

Frames = list[tuple[str, dict[str, Any]]]
SignIn = Callable[[str, str, str], Page]

DANA = ("dana", "dana-demo-2026")
ADMIN = ("admin", "admin-demo-2026")
QUESTION = "When will my card arrive?"
HELD_NOTICE = "A person from our support team is checking the answer"
EDITED = (
    "Your new card is on its way: cards usually arrive within 5 to 7 working "
    "days. Dana from support checked this answer."
)
SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "console-draft.png"


@pytest.fixture
def sign_in(browser: Browser, live_server_url: str) -> Iterator[SignIn]:
    """A fresh profile signed in through the admin login page, at `next`."""
    contexts = []
    errors: list[str] = []

    def log_in(username: str, password: str, next_url: str) -> Page:
        context = browser.new_context(
            base_url=live_server_url, viewport={"width": 1280, "height": 800}
        )
        contexts.append(context)
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(f"/admin/login/?next={next_url}")
        tab.get_by_label("Username").fill(username)
        tab.get_by_label("Password").fill(password)
        tab.get_by_role("button", name="Log in").click()
        return tab

    yield log_in
    for context in contexts:
        context.close()
    assert errors == []


def set_review_mode(admin: Page, mode: str) -> None:
    # The list page redirects to the single record, or to its add page.
    admin.goto("/admin/knowledge/botsettings/")
    admin.get_by_label("Review mode").select_option(mode)
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin.locator(".messagelist")).to_contain_text("successfully")


@pytest.fixture
def copilot(sign_in: SignIn) -> Iterator[None]:
    """Every answer is a draft for an agent, until the test ends."""
    admin = sign_in(*ADMIN, "/admin/")
    expect(admin).to_have_url(re.compile(r"/admin/$"))
    set_review_mode(admin, "copilot")
    yield
    # The server is shared by the whole session: later tests expect autopilot.
    set_review_mode(admin, "autopilot")


def conversation_of(frames: Frames) -> str:
    acks = [f for way, f in frames if way == "received" and f["type"] == "ack"]
    conversation: str = acks[-1]["conversation"]
    return conversation


def test_agent_edits_a_held_answer_and_the_customer_gets_the_edit(
    copilot: None, page: Page, frames: Frames, sign_in: SignIn
) -> None:
    dana = sign_in(*DANA, "/agent/")
    expect(dana).to_have_url(re.compile(r"/agent/$"))
    expect(dana.locator("#conn")).to_have_text("Connected")

    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("button", name="Talk to a person")).to_be_enabled()
    page.get_by_label("Message").fill(QUESTION)
    page.get_by_label("Message").press("Enter")

    expect(page.locator(".log .item-system").last).to_contain_text(HELD_NOTICE)
    expect(page.locator(".log .item-bot")).to_have_count(0)
    conversation = conversation_of(frames)

    item = dana.locator(f'.queue-item[data-conversation="{conversation}"]')
    expect(item).to_contain_text("Answer to approve")
    item.click()

    draft = dana.locator(".msg-draft")
    expect(draft).to_have_count(1)
    expect(draft).to_contain_text("Draft answer — waiting for your approval")
    expect(draft).to_contain_text(re.compile(r"Confidence \d+ %"))
    expect(draft).to_contain_text("Sources: ")
    held_text = draft.locator(".msg-text").inner_text()
    assert held_text.strip(), "the draft has no text"
    # Not sent: the transcript has the question and the notice, no bot answer.
    expect(dana.locator(".msg-bot")).to_have_count(0)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    dana.screenshot(path=str(SCREENSHOT))

    draft.get_by_role("button", name="Edit", exact=True).click()
    editor = draft.get_by_label("Edit the draft answer")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(held_text)
    editor.fill(EDITED)
    draft.get_by_role("button", name="Send edited").click()

    bot_answer = page.locator(".log .item-bot")
    expect(bot_answer).to_have_count(1)
    expect(bot_answer.locator(".bubble")).to_contain_text(EDITED)
    stored = [
        f
        for way, f in frames
        if way == "received" and f["type"] == "message" and f["role"] == "bot"
    ]
    assert [f["text"] for f in stored] == [EDITED]

    # The console drops the draft, shows the sent answer, and the bot has it back.
    expect(dana.locator(".msg-draft")).to_have_count(0)
    expect(dana.locator(".msg-bot .msg-text")).to_have_text(EDITED)
    expect(dana.locator("#conv-status")).to_have_text("With the bot")
    expect(dana.locator("#alert")).to_be_empty()
    assert held_text not in page.locator("support-chat-widget").inner_text()
