"""A customer chats through the real widget on the demo page, in Chromium.

The widget lives in an open shadow root; Playwright's CSS and role locators
reach into it.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    BrowserContext,
    Dialog,
    Locator,
    Page,
    WebSocketRoute,
    expect,
)

pytestmark = pytest.mark.browser

Frames = list[tuple[str, dict[str, Any]]]

CARD_QUESTION = "My card still hasn't arrived, what should I do?"
# var/ is ignored by git: the screenshot is for looking at, not for committing.
SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "widget.png"


def open_widget(page: Page) -> None:
    page.get_by_role("button", name="Open chat").click()
    widget_ready(page)


def widget_ready(page: Page) -> None:
    expect(page.get_by_role("dialog")).to_be_visible()
    # Ready: welcomed and replayed, so sent messages go straight out.
    expect(page.get_by_role("button", name="Talk to a person")).to_be_enabled()


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def customer_bubbles(page: Page, text: str) -> Locator:
    return page.locator(".log .item-customer .bubble").filter(has_text=text)


def bot_answers(page: Page) -> Locator:
    return page.locator(".log .item-bot")


def received(frames: Frames, kind: str) -> list[dict[str, Any]]:
    return [f for way, f in frames if way == "received" and f["type"] == kind]


def sent(frames: Frames, kind: str) -> list[dict[str, Any]]:
    return [f for way, f in frames if way == "sent" and f["type"] == kind]


def test_customer_gets_a_streamed_answer_with_sources_and_rates_it(
    page: Page, frames: Frames
) -> None:
    open_widget(page)
    greeting = received(frames, "welcome")[0]["bot"]["greeting"]
    expect(page.locator(".greeting")).to_have_text(greeting)

    send(page, CARD_QUESTION)

    expect(customer_bubbles(page, CARD_QUESTION)).to_have_count(1)
    answer = bot_answers(page)
    expect(answer).to_have_count(1)
    expect(answer.locator(".sources")).to_contain_text("Sources: ")
    expect(page.locator(".previews .item")).to_have_count(0)
    # The answer ends the bot's typing notice, long before the notice expires.
    expect(page.locator(".typing")).to_be_hidden(timeout=5_000)
    stored = received(frames, "message")[-1]
    assert stored["role"] == "bot"
    assert [f["stream"] for f in received(frames, "typing")] == [stored["stream"]]
    assert received(frames, "bot.delta"), "the answer did not stream"
    assert stored["text"] in answer.locator(".bubble").inner_text()

    helpful = answer.get_by_role("button", name="Helpful", exact=True)
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "false"
    )

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


def test_reload_shows_the_same_conversation(page: Page) -> None:
    open_widget(page)
    send(page, CARD_QUESTION)
    expect(bot_answers(page).locator(".sources")).to_have_count(1)

    page.reload()
    widget_ready(page)  # the chat stays open across a reload

    expect(customer_bubbles(page, CARD_QUESTION)).to_have_count(1)
    expect(bot_answers(page)).to_have_count(1)
    expect(bot_answers(page).locator(".sources")).to_contain_text("Sources: ")
    expect(page.locator(".delivery")).to_have_count(0)


def test_the_chat_is_open_or_closed_after_a_reload_as_it_was_left(
    page: Page,
) -> None:
    open_widget(page)
    page.reload()
    widget_ready(page)
    # The visitor was reading the page, not typing: focus stays with it.
    assert page.evaluate("document.activeElement === document.body")

    page.get_by_role("button", name="Close chat").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    page.reload()
    expect(page.get_by_role("button", name="Open chat")).to_be_visible()
    expect(page.get_by_role("dialog")).to_be_hidden()


def test_a_rating_is_shown_again_after_a_reload(page: Page) -> None:
    open_widget(page)
    send(page, CARD_QUESTION)
    not_helpful = bot_answers(page).get_by_role("button", name="Not helpful")
    not_helpful.click()
    expect(not_helpful).to_have_attribute("aria-pressed", "true")

    page.reload()
    widget_ready(page)  # the chat stays open across a reload

    answer = bot_answers(page)
    expect(answer.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(answer.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
        "aria-pressed", "false"
    )


def test_message_typed_offline_is_sent_exactly_once_after_reconnecting(
    context: BrowserContext, page: Page, frames: Frames
) -> None:
    text = "How long does a transfer take?"
    open_widget(page)

    context.set_offline(True)
    expect(page.locator(".conn")).to_have_text(
        "Offline — your messages will be sent when you're back"
    )
    send(page, text)
    expect(customer_bubbles(page, text)).to_have_count(1)
    expect(page.locator(".delivery")).to_have_text("Sending…")
    outbox = page.evaluate(OUTBOX_JS)
    assert [entry["text"] for entry in json.loads(outbox)] == [text]
    assert sent(frames, "message") == []

    context.set_offline(False)

    expect(bot_answers(page)).to_have_count(1)
    expect(customer_bubbles(page, text)).to_have_count(1)
    expect(page.locator(".delivery")).to_have_count(0)
    assert [frame["text"] for frame in sent(frames, "message")] == [text]
    assert page.evaluate(OUTBOX_JS) is None

    # As if the tab closed before the ack came: the entry is still in the outbox
    # on the next load, and the message must still appear once.
    page.evaluate(RESTORE_OUTBOX_JS, outbox)
    page.reload()
    widget_ready(page)  # the chat stays open across a reload

    expect(bot_answers(page)).to_have_count(1)
    expect(page.locator(".delivery")).to_have_count(0)
    expect(customer_bubbles(page, text)).to_have_count(1)
    assert page.evaluate(OUTBOX_JS) is None


def test_hostile_text_is_shown_as_text(page: Page) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    dialogs: list[str] = []

    def note_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", note_dialog)
    open_widget(page)

    send(page, hostile)

    expect(page.locator(".log .item-customer .delivery")).to_have_count(0)
    expect(customer_bubbles(page, hostile)).to_have_count(1)
    expect(bot_answers(page)).to_have_count(1)
    assert page.locator("img").count() == 0
    assert page.locator("support-chat-widget img").count() == 0
    assert dialogs == []


def test_keyboard_alone_opens_sends_and_closes(page: Page) -> None:
    launcher = page.get_by_role("button", name="Open chat")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED_LABEL_JS) == "Open chat":
            break
    else:
        pytest.fail("Tab never reached the chat launcher")

    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Message")).to_be_focused()

    page.keyboard.type("Can I change my PIN?")
    page.keyboard.press("Enter")
    expect(customer_bubbles(page, "Can I change my PIN?")).to_have_count(1)
    expect(page.get_by_label("Message")).to_have_value("")

    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()


def test_a_text_over_the_limit_is_kept_whole_until_shortened(
    page: Page, frames: Frames
) -> None:
    open_widget(page)
    box = page.get_by_label("Message")
    count = page.locator(".count")
    # As a paste arrives: nothing of it may be cut off.
    too_long = "Please read this. " + "x" * 3990
    box.fill(too_long)

    expect(box).to_have_value(too_long)
    expect(count).to_have_text("4,008 of 4,000 characters: 8 too many.")
    expect(box).to_have_attribute("aria-invalid", "true")
    box.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("at most 4,000 characters")
    expect(box).to_have_value(too_long)
    assert sent(frames, "message") == []

    # Counted as the server counts: an emoji is one character, not two.
    at_limit = "\N{GRINNING FACE}" * 4000
    box.fill(at_limit)
    expect(count).to_have_text("4,000 of 4,000 characters.")
    expect(page.get_by_role("alert")).to_be_hidden()
    box.press("Enter")
    expect(page.locator(".log .item-customer .delivery")).to_have_count(0)
    assert [f["text"] for f in sent(frames, "message")] == [at_limit]
    expect(count).to_be_hidden()


def test_half_an_emoji_is_sent_as_a_replacement_character(
    page: Page, frames: Frames
) -> None:
    open_widget(page)
    box = page.get_by_label("Message")
    # A paste cut in the middle of an emoji leaves its first half.
    box.evaluate("el => { el.value = 'My card \\ud83d'; }")
    box.press("Enter")

    expect(page.locator(".log .item-customer .delivery")).to_have_count(0)
    expect(customer_bubbles(page, "My card \N{REPLACEMENT CHARACTER}")).to_have_count(1)
    assert [f["text"] for f in sent(frames, "message")] == [
        "My card \N{REPLACEMENT CHARACTER}"
    ]


def test_right_to_left_text_reads_right_to_left(page: Page) -> None:
    open_widget(page)
    hebrew = "\u05d0\u05d9\u05e4\u05d4 \u05d4\u05db\u05e8\u05d8\u05d9\u05e1?"
    box = page.get_by_label("Message")
    box.fill(hebrew)
    assert box.evaluate("el => getComputedStyle(el).direction") == "rtl"
    box.press("Enter")
    send(page, "Where is my card?")

    direction = "el => getComputedStyle(el).direction"
    expect(customer_bubbles(page, "Where is my card?")).to_have_count(1)
    assert customer_bubbles(page, hebrew).evaluate(direction) == "rtl"
    assert customer_bubbles(page, "Where is my card?").evaluate(direction) == "ltr"
    assert box.evaluate(direction) == "ltr"


OUTBOX_JS = """() => {
  const key = Object.keys(localStorage).find((k) => k.endsWith(':outbox'));
  return key ? localStorage.getItem(key) : null;
}"""

RESTORE_OUTBOX_JS = """(outbox) => {
  const token = Object.keys(localStorage).find((k) => k.endsWith(':token'));
  localStorage.setItem(token.replace(/:token$/, ':outbox'), outbox);
}"""

FOCUSED_LABEL_JS = """() => {
  const host = document.querySelector('support-chat-widget');
  if (document.activeElement !== host) return null;
  return host.shadowRoot.activeElement?.getAttribute('aria-label') ?? null;
}"""


def test_an_answer_whose_message_never_comes_does_not_linger(
    context: BrowserContext,
) -> None:
    # As if the server stopped between the last piece and storing the answer:
    # the stored message is held back on its way to the page.
    held: list[dict[str, Any]] = []

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "message" and frame.get("role") == "bot":
                held.append(frame)
                return
            ws.send(message)

        server.on_message(from_server)
        ws.on_message(server.send)

    page = context.new_page()
    page.clock.install()
    page.route_web_socket("**/ws/widget/", relay)
    page.goto("/")
    open_widget(page)
    send(page, CARD_QUESTION)
    expect(page.locator(".previews .item")).to_have_count(1)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the answer was never stored"
    expect(page.locator(".previews .item")).to_have_count(1)

    page.clock.fast_forward("01:05")

    expect(page.locator(".previews .item")).to_have_count(0, timeout=5_000)
    expect(page.locator(".typing")).to_be_hidden(timeout=5_000)


def test_a_widget_whose_visitor_was_erased_starts_as_a_new_one(
    context: BrowserContext,
) -> None:
    # The server closes the socket with 4410 when the visitor is erased
    # (tests/test_erasure_live.py); here the relay closes it the same way.
    sockets: list[WebSocketRoute] = []

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(ws.send)
        ws.on_message(server.send)
        sockets.append(ws)

    page = context.new_page()
    page.route_web_socket("**/ws/widget/", relay)
    page.goto("/")
    open_widget(page)
    send(page, CARD_QUESTION)
    expect(bot_answers(page)).to_have_count(1)
    token = page.evaluate("Object.keys(localStorage).find(k => k.endsWith(':token'))")
    first = page.evaluate(f"localStorage.getItem({json.dumps(token)})")

    sockets[-1].close(code=4410, reason="Visitor erased")

    expect(customer_bubbles(page, CARD_QUESTION)).to_have_count(0)
    expect(bot_answers(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Talk to a person")).to_be_enabled()
    second = page.evaluate(f"localStorage.getItem({json.dumps(token)})")
    assert second and second != first
