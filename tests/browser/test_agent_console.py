"""A customer and support agents, each in their own Chromium profile, live.

The customer uses the widget on the demo page; Dana (a support agent) and
the admin (a superuser, so also an agent) use the console at /agent/ after
signing in through the admin login page.
"""

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, WebSocketRoute, expect

pytestmark = pytest.mark.browser

Frames = list[tuple[str, dict[str, Any]]]
SignIn = Callable[..., Page]

DANA = ("dana", "dana-demo-2026")
ADMIN = ("admin", "admin-demo-2026")
# The console's heartbeat interval (static/agent/console.js).
HEARTBEAT_MS = 20_000
CARD_QUESTION = "My card still hasn't arrived, what should I do?"
VAR = Path(__file__).resolve().parents[2] / "var"


@pytest.fixture
def sign_in(browser: Browser, live_server_url: str) -> Iterator[SignIn]:
    """Opens the console in a fresh profile, signed in as the given user."""
    contexts = []
    errors: list[str] = []

    def open_console(
        username: str, password: str, prepare: Callable[[Page], None] | None = None
    ) -> Page:
        context = browser.new_context(
            base_url=live_server_url, viewport={"width": 1280, "height": 800}
        )
        contexts.append(context)
        console = context.new_page()
        console.on("pageerror", lambda error: errors.append(str(error)))
        if prepare is not None:
            prepare(console)
        console.goto("/admin/login/?next=/agent/")
        console.get_by_label("Username").fill(username)
        console.get_by_label("Password").fill(password)
        console.get_by_role("button", name="Log in").click()
        expect(console).to_have_url(re.compile(r"/agent/$"))
        expect(console.locator("#conn")).to_have_text("Connected")
        return console

    yield open_console
    for context in contexts:
        context.close()
    assert errors == []


def open_widget(page: Page) -> None:
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("button", name="Talk to a person")).to_be_enabled()


def customer_says(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def queue_item(console: Page, conversation: str) -> Locator:
    return console.locator(f'.queue-item[data-conversation="{conversation}"]')


def conversation_of(frames: Frames) -> str:
    statuses = [f for way, f in frames if way == "received" and f["type"] == "status"]
    conversation: str = statuses[-1]["conversation"]
    return conversation


def test_agent_takes_over_a_conversation_and_hands_it_back_resolved(
    page: Page, frames: Frames, sign_in: SignIn
) -> None:
    dana = sign_in(*DANA)
    expect(dana.locator("#conv-title")).to_have_text("No conversation open")

    open_widget(page)
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.locator(".queue-text")).to_have_text(
        re.compile(r"You're number \d+ in the queue")
    )
    conversation = conversation_of(frames)

    # The queue is live: the new conversation appears without a reload.
    item = queue_item(dana, conversation)
    expect(item).to_contain_text("Waiting")
    expect(item).to_contain_text("Asked for a person")
    item.click()
    dana.get_by_role("button", name="Claim").click()

    expect(page.locator(".log .item-system").last).to_contain_text(
        "Dana from support joined."
    )
    expect(page.locator(".conv-status")).to_have_text("You're chatting with Dana.")
    expect(dana.locator("#conv-status")).to_have_text("With a person: you.")
    expect(item).to_contain_text("Yours")

    reply = "Hi, I'm Dana. Let me look at your card."
    dana.get_by_label("Reply to the customer").fill(reply)
    expect(page.locator(".typing")).to_contain_text("Dana is typing…")
    dana.get_by_label("Reply to the customer").press("Enter")
    agent_message = page.locator(".log .item-agent")
    expect(agent_message.locator(".bubble")).to_contain_text(reply)
    expect(agent_message.locator(".author")).to_have_text("Dana")
    expect(dana.get_by_label("Reply to the customer")).to_have_value("")

    answer = "Thanks, it has been two weeks now."
    customer_says(page, answer)
    expect(dana.locator(".msg-customer").filter(has_text=answer)).to_have_count(1)

    note = "Checked the address on file: it is current."
    dana.get_by_label("Internal note").fill(note)
    dana.get_by_role("button", name="Add note").click()
    expect(dana.locator(".msg-note")).to_contain_text(note)

    VAR.mkdir(exist_ok=True)
    dana.screenshot(path=str(VAR / "agent-console.png"))
    page.screenshot(path=str(VAR / "widget-with-agent.png"))

    # A second agent cannot take a conversation somebody already has.
    admin = sign_in(*ADMIN)
    queue_item(admin, conversation).click()
    expect(admin.locator("#conv-status")).to_have_text("With a person: Dana.")
    admin.get_by_role("button", name="Claim").click()
    expect(admin.get_by_role("alert")).to_contain_text("Already claimed")
    expect(admin.get_by_role("alert")).to_contain_text("Dana already took this one.")

    expect(dana.get_by_role("button", name="Suggest reply")).to_be_enabled()
    dana.get_by_role("button", name="Resolve").click()
    expect(page.locator(".conv-status")).to_have_text("This conversation is closed.")
    expect(item).to_have_count(0)
    # Nobody can send a draft for a closed conversation; a note is still kept.
    expect(dana.get_by_role("button", name="Suggest reply")).to_be_disabled()
    expect(dana.get_by_role("button", name="Add note")).to_be_enabled()
    assert note not in page.locator("support-chat-widget").inner_text()

    customer_says(page, CARD_QUESTION)
    bot_answer = page.locator(".log .item-bot")
    expect(bot_answer).to_have_count(1)
    expect(bot_answer.locator(".sources")).to_contain_text("Sources: ")
    # The agent still watching sees the bot's answer, with what it rests on.
    expect(dana.locator(".msg-bot .signals")).to_contain_text("Sources: ")


def test_a_request_for_a_person_shows_no_confidence_in_the_queue(
    page: Page, frames: Frames, sign_in: SignIn
) -> None:
    dana = sign_in(*DANA)
    open_widget(page)
    customer_says(page, "I want to talk to a human please")
    expect(page.locator(".queue-text")).to_be_visible()

    item = queue_item(dana, conversation_of(frames))
    expect(item).to_contain_text("Asked for a person")
    # The bot's confidence in an answer it never tried says nothing here.
    expect(item.locator(".qi-confidence")).to_have_count(0)


def test_send_is_enabled_only_while_the_reply_box_has_text(
    page: Page, frames: Frames, sign_in: SignIn
) -> None:
    dana = sign_in(*DANA)
    open_widget(page)
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.locator(".queue-text")).to_be_visible()
    queue_item(dana, conversation_of(frames)).click()
    dana.get_by_role("button", name="Claim").click()
    expect(dana.locator("#conv-status")).to_have_text("With a person: you.")

    reply_box = dana.get_by_label("Reply to the customer")
    send_button = dana.get_by_role("button", name="Send", exact=True)
    expect(send_button).to_be_disabled()
    reply_box.fill(" \n ")
    expect(send_button).to_be_disabled()
    # Enter in a blank box sends nothing either, and adds no line.
    reply_box.press("Enter")
    expect(reply_box).to_have_value(" \n ")

    reply_box.fill("Hello, Dana here.")
    expect(send_button).to_be_enabled()
    send_button.click()
    expect(page.locator(".log .item-agent")).to_have_count(1)
    expect(reply_box).to_have_value("")
    expect(send_button).to_be_disabled()

    dana.get_by_label("Canned reply").select_option(label="Greeting")
    dana.get_by_role("button", name="Insert").click()
    expect(send_button).to_be_enabled()

    dana.get_by_role("button", name="Resolve").click()
    expect(page.locator(".conv-status")).to_have_text("This conversation is closed.")
    expect(page.locator(".log .item-agent")).to_have_count(1)


def test_console_sends_anonymous_visitors_to_the_login_page(page: Page) -> None:
    page.goto("/agent/")

    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/agent/$"))
    expect(page.get_by_label("Username")).to_be_visible()


def test_an_offer_whose_live_notice_was_lost_shows_after_a_heartbeat(
    page: Page, frames: Frames, sign_in: SignIn
) -> None:
    # Offers whose `assigned` frame was lost, by conversation; earlier tests
    # can leave conversations queued that are offered too.
    dropped: dict[str, Page] = {}
    # The live events that would tell of an offer are lost: the offer itself,
    # and every queue frame (a queue frame can show the offer before it).
    losing = {"assigned", "queue"}

    def losing_assigned(console: Page) -> None:
        def relay(ws: WebSocketRoute) -> None:
            server = ws.connect_to_server()

            def from_server(message: str | bytes) -> None:
                frame = json.loads(message)
                if frame.get("type") == "assigned":
                    dropped[frame["conversation"]] = console
                if frame.get("type") in losing:
                    return
                ws.send(message)

            server.on_message(from_server)
            ws.on_message(server.send)

        console.clock.install()
        console.route_web_socket("**/ws/agent/", relay)

    # Both demo agents online, so the offer goes to one of them.
    for credentials in (DANA, ADMIN):
        sign_in(*credentials, prepare=losing_assigned)
    open_widget(page)
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.locator(".queue-text")).to_be_visible()
    conversation = conversation_of(frames)
    for _ in range(100):
        if conversation in dropped:
            break
        page.wait_for_timeout(100)
    offered_to = dropped[conversation]
    # Its console has not heard of the offer (an earlier test's conversation
    # may be offered on the banner already).
    offer_shown = queue_item(offered_to, conversation).filter(has_text="Offered to you")
    expect(offer_shown).to_have_count(0)

    # From here on frames come through, and the heartbeat brings the queue.
    losing.clear()
    offered_to.clock.fast_forward(HEARTBEAT_MS)

    expect(offer_shown).to_have_count(1)
    expect(offered_to.locator("#offer")).to_contain_text("offered to you")


def agents_online(page: Page) -> float:
    """The server's count of agents online, from its Prometheus metrics."""
    body = page.request.get("/metrics").text()
    return float(re.findall(r"^support_bot_agents_online (\S+)$", body, re.M)[0])


def wait_for_agents_online(page: Page, wanted: Callable[[float], bool]) -> float:
    count = agents_online(page)
    for _ in range(50):
        if wanted(count):
            break
        page.wait_for_timeout(500)
        count = agents_online(page)
    return count


def test_closing_the_console_is_the_agent_leaving(page: Page, sign_in: SignIn) -> None:
    """Chromium closes the console's socket as the page goes away (1001), so
    the agent is offline once the reload grace (10 s, escalation/actions.py)
    has passed, not after the heartbeat timeout of a minute. Earlier tests'
    agents left the same way."""
    page.goto("/")
    dana = sign_in(*DANA)
    assert wait_for_agents_online(page, lambda n: n >= 1) >= 1

    dana.close()

    assert wait_for_agents_online(page, lambda n: n == 0) == 0
