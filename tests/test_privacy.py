"""Personal data stays out of prompts, logs, task messages and previews.

Timing, for the record rather than as a test (a laptop CPU, Python 3.11):
`redact` takes about 1 microsecond on a short message without digits or "@",
0.25 ms on a 80-character message with a reference and a phone number, and
9 ms on a 4,000-character message (MAX_MESSAGE_CHARS) packed with cards,
IBANs, phone numbers and addresses; phonenumbers' matcher is most of that.
"""

# Full-width digits and letters are what these tests type on purpose.
# ruff: noqa: RUF001

import inspect
import itertools
import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from typing import Any, get_type_hints

import phonenumbers
import pytest
from celery.app.task import Task
from django.utils.module_loading import import_string
from hypothesis import given
from hypothesis import strategies as st
from kombu.utils.json import dumps as kombu_dumps
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from stdnum import iban, luhn

from conversations.models import Message
from escalation.models import Escalation
from support_bot import logging as redacting_logging
from support_bot.celery import app as celery_app
from support_bot.privacy import AnswerStream, redact, redact_answer
from tests.fake_llm import Reply
from tests.widget import ask, receive_until, resume

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"


LOST_CARD_QUESTIONS = [
    f"I lost my card {CARD}, what do I do?",
    "someone took my wallet with my card",
    "my card was stolen, what now?",
    "it was 4111.1111.1111.1111 or ４１１１ １１１１ １１１１ １１１１",
    "or 4111\u200b1111\u200b1111\u200b1111 on the app",
]


def carries_card(payload: object) -> bool:
    """Whether the card's digits appear in `payload`, however they are written."""
    text = json.dumps(payload, default=str, ensure_ascii=False)
    folded = unicodedata.normalize("NFKC", text).replace("\u200b", "")
    return CARD_DIGITS in re.sub(r"[\s./-]", "", folded)


@pytest.fixture
def bot_always_answers(settings: Any) -> None:
    """These tests are about where text goes, not whether the bot hands over."""
    settings.CONFIDENCE_THRESHOLD = 0.0


def answer_from_the_lost_card_article(llm: Any, kb: Any) -> None:
    lost = kb["Reporting a lost or stolen card"].id
    llm.default = Reply(
        chunks=["Freeze the card in the app ", f"straight away [A{lost}]."]
    )


# --- redact ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"My card {CARD} was charged twice", "My card [card] was charged twice"),
        ("4111-1111-1111-1111.", "[card]."),
        ("card 4111111111111111, expiry 12/27", "card [card], expiry 12/27"),
        ("Amex 3782 822463 10005 please", "Amex [card] please"),
        (f"{CARD} and 12 more", "[card] and 12 more"),
        ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN [iban] thanks"),
        ("iban: de89370400440532013000.", "iban: [iban]."),
        ("ring 07911 123456 or +44 20 7946 0958", "ring [phone] or [phone]"),
        ("US office +1 415-555-2671", "US office [phone]"),
        ("mail dana.smith+bank@example.co.uk.", "mail [email]."),
        ("(ana@exämple.de)", "([email])"),
        # The ranges kept for fiction and examples are not valid numbers.
        ("text me on 07700 900123 please", "text me on [phone] please"),
        ("+44 7700 900461.", "[phone]."),
        ("US (555) 555-0199", "US [phone]"),
        # Addresses spelled out to get past filters.
        ("dana [at] example [dot] com", "[email]"),
        ("dana(at)example.co.uk, thanks", "[email], thanks"),
        ("dana.smith at example dot com.", "[email]."),
        ("write to dana @ example.com", "write to [email]"),
        ("ＤＡＮＡ［ａｔ］ｅｘａｍｐｌｅ．ｃｏｍ", "[email]"),
    ],
)
def test_redact_replaces_personal_data_by_its_kind(text: str, redacted: str) -> None:
    assert redact(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "I paid £1,000 on 12/03/2024 at 14:00",
        "It arrives within 3 to 5 working days.",
        "Order 4111 1111 1111 1112 has not come",  # fails Luhn
        "order 12345678901234, message #1234567",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
        "2024-03-12T14:00:00Z, 14:00-15:30, v1.2.3.4",
        "sort code 12-34-56, account 12345678",
        "conversation 6ae2604c-5879-430c-a909-634719ac808c",
        "@dana can you look? me@work",
        "When will my card arrive?",
        "version 1.2.3.4 of 12.03.2024, price 1.500.000",
        "注文番号は１２３４です。",  # a full-width order number
        "call 030 901820 or 555-0199",  # too short to be taken unchecked
        "Have a look at example.com, it's at home",
        "me @ work, see you at 5 dot",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("card 4111.1111.1111.1111.", "card [card]."),
        ("card 4111/1111/1111/1111", "card [card]"),
        ("card 4111 - 1111 - 1111 - 1111 ok", "card [card] ok"),
        ("card 4111\u20131111\u20131111\u20131111", "card [card]"),  # en dashes
        ("card 4111\u00a01111\u00a01111\u00a01111", "card [card]"),  # no-break
        ("card 4111\u200b1111\u200b1111\u200b1111!", "card [card]!"),  # zero-width
        ("card 4111\u00ad1111\u20601111\ufeff1111", "card [card]"),
        # A Japanese input method writes full-width digits and spaces.
        (
            "カード番号は４１１１　１１１１　１１１１　１１１１です。",
            "カード番号は[card]です。",
        ),
        ("card ٤١١١١١١١١١١١١١١١ ok", "card [card] ok"),  # Arabic-Indic digits
        ("IBAN GB82-WEST-1234-5698-7654-32.", "IBAN [iban]."),
        ("IBAN ＧＢ８２　ＷＥＳＴ　１２３４　５６９８　７６５４　３２", "IBAN [iban]"),
        ("ring 020.7946.0958 or ０７９１１ １２３４５６", "ring [phone] or [phone]"),
        ("ring +44\u200b20\u200b7946\u200b0958 today", "ring [phone] today"),
        ("mail ｄａｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ now", "mail [email] now"),
        ("mail dana\u200b@example.com now", "mail [email] now"),
    ],
)
def test_redact_sees_through_how_a_number_is_typed(text: str, redacted: str) -> None:
    assert redact(text) == redacted


def test_phone_numbers_without_country_code_follow_the_region() -> None:
    assert redact("call 030 901820", region="DE") == "call [phone]"
    assert redact("call 030 901820", region="GB") == "call 030 901820"


def example_numbers() -> Iterator[tuple[str, str]]:
    """Each region's example numbers, as people write them at home and abroad."""
    formats = (PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for style in formats:
                yield region, phonenumbers.format_number(number, style)


def test_every_regions_example_numbers_are_redacted() -> None:
    # Including the shortest numbering plans, which the cheap check for
    # "enough digits to be a phone number" must not skip.
    missed = [
        (region, written)
        for region, written in example_numbers()
        if redact(f"call me on {written} today", region=region)
        != "call me on [phone] today"
    ]
    assert missed == []


words = st.lists(
    st.sampled_from(["my", "card", "is", "the", "number", "please", "ok", "£12"]),
    max_size=4,
).map(" ".join)


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    body = draw(st.from_regex(r"4[0-9]{14}", fullmatch=True))
    number = body + luhn.calc_check_digit(body)
    if draw(st.booleans()):
        number = number.translate(FULL_WIDTH)
    separator = draw(
        st.sampled_from(["", " ", "-", ".", "/", " - ", "\u200b", "\u3000", "\u2013"])
    )
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


@given(before=words, number=card_numbers(), after=words)
def test_any_card_number_in_a_sentence_is_redacted(
    before: str, number: str, after: str
) -> None:
    redacted = redact(f"{before} {number} {after}")

    assert "[card]" in redacted
    assert not re.search(r"\d", redacted.replace("£12", ""))


@given(
    bank=st.from_regex(r"[A-Z]{4}", fullmatch=True),
    account=st.from_regex(r"[0-9]{14}", fullmatch=True),
    spaced=st.booleans(),
)
def test_any_valid_iban_is_redacted(bank: str, account: str, spaced: bool) -> None:
    number = iban.calc_check_digits(f"GB00{bank}{account}")
    number = f"GB{number}{bank}{account}"
    assert iban.is_valid(number)
    text = iban.format(number) if spaced else number

    assert redact(f"pay to {text} today") == "pay to [iban] today"


@given(
    pounds=st.integers(0, 99_999),
    day=st.integers(1, 28),
    month=st.integers(1, 12),
    hour=st.integers(0, 23),
    low=st.integers(1, 9),
)
def test_amounts_dates_times_and_durations_survive(
    pounds: int, day: int, month: int, hour: int, low: int
) -> None:
    text = (
        f"£{pounds:,} on {day:02}/{month:02}/2024 at {hour:02}:00, "
        f"{low} to {low + 2} working days"
    )
    assert redact(text) == text


@given(st.text())
def test_redact_takes_any_text(text: str) -> None:
    assert isinstance(redact(text), str)


# --- The prompt -------------------------------------------------------------------


@pytest.mark.usefixtures("bot_always_answers")
async def test_a_card_number_never_reaches_the_model(
    connect: Any, kb: Any, llm: Any, settings: Any
) -> None:
    # A small budget folds the card's turn into a summary, so the summary
    # request to the model is covered too.
    settings.MEMORY_TOKEN_BUDGET = 60
    answer_from_the_lost_card_article(llm, kb)
    widget = await connect()
    await resume(widget)

    for question in LOST_CARD_QUESTIONS:
        await ask(widget, question)

    assert any(r.get("stream") for r in llm.requests), "the model was asked"
    assert not [r for r in llm.requests if carries_card(r)]


# --- Logs ---------------------------------------------------------------------------


@pytest.fixture
def redacted_caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog at DEBUG everywhere, filtered as settings.LOGGING filters handlers."""
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(redacting_logging.RedactingFilter())
    return caplog


def test_every_configured_handler_redacts(settings: Any) -> None:
    handlers = settings.LOGGING["handlers"]
    assert handlers
    assert all("redact" in handler.get("filters", []) for handler in handlers.values())


@pytest.mark.usefixtures("bot_always_answers")
async def test_a_card_number_never_reaches_the_logs(
    connect: Any, kb: Any, llm: Any, redacted_caplog: pytest.LogCaptureFixture
) -> None:
    answer_from_the_lost_card_article(llm, kb)
    widget = await connect()
    await resume(widget)

    await ask(widget, LOST_CARD_QUESTIONS[0])

    # The OpenAI SDK logs its request bodies at DEBUG: there is something to
    # redact even once the prompt itself is redacted.
    assert redacted_caplog.records
    assert not carries_card(redacted_caplog.text)
    assert not [r for r in redacted_caplog.records if carries_card(r.getMessage())]


def test_the_filter_redacts_arguments_tracebacks_and_extra_fields(
    redacted_caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.privacy")
    try:
        raise ValueError(f"bad input {CARD}")
    except ValueError:
        logger.exception(
            "Failed for %s", "dana@example.com", extra={"note": f"card {CARD}"}
        )

    record = redacted_caplog.records[-1]
    assert record.getMessage() == "Failed for [email]"
    assert "ValueError: bad input [card]" in redacted_caplog.text
    assert getattr(record, "note") == "card [card]"  # noqa: B009


def test_the_filter_withholds_a_line_it_cannot_redact(
    redacted_caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("redaction broke")

    monkeypatch.setattr(redacting_logging, "redact", broken)

    logging.getLogger("tests.privacy").warning("card %s", CARD)

    assert redacted_caplog.records[-1].getMessage() == redacting_logging.UNREDACTABLE


def test_error_reports_redact_local_variables_and_the_exception(settings: Any) -> None:
    reporter_class = import_string(settings.DEFAULT_EXCEPTION_REPORTER)

    def fail(text: str) -> None:
        raise ValueError(f"could not read {text}")

    try:
        fail(f"my card {CARD}")
    except ValueError as error:
        reporter = reporter_class(None, type(error), error, error.__traceback__)
        report = reporter.get_traceback_text()

    assert "could not read my card [card]" in report
    assert not carries_card(str(report))


# --- Task messages ------------------------------------------------------------------


@pytest.fixture
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(task name, JSON body) of every task queued, as a worker would get it.

    Tests run tasks inline, where each one reaches Task.apply with the
    arguments after their trip through the task serializer.
    """
    sent: list[tuple[str, str]] = []
    original = Task.apply

    def recording(
        self: Task[Any, Any], args: Any = None, kwargs: Any = None, **options: Any
    ) -> Any:
        sent.append((self.name, kombu_dumps([args or [], kwargs or {}])))
        return original(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply", recording)
    yield sent


@pytest.mark.usefixtures("bot_always_answers")
async def test_no_task_message_carries_a_card_number(
    connect: Any, kb: Any, llm: Any, settings: Any, sent_tasks: list[tuple[str, str]]
) -> None:
    settings.MEMORY_TOKEN_BUDGET = 60
    answer_from_the_lost_card_article(llm, kb)
    widget = await connect()
    await resume(widget)

    for question in LOST_CARD_QUESTIONS:
        await ask(widget, question)
    await widget.send_json_to({"type": "request_human"})
    await receive_until(widget, lambda f: f.get("status") == "waiting")

    names = {name for name, _ in sent_tasks}
    assert {
        "conversations.tasks.summarize_conversation_task",
        "escalation.tasks.route_escalation_task",
    } <= names
    assert not [(name, body) for name, body in sent_tasks if carries_card(body)]


ID_TYPES = (int, float, bool)


def test_every_task_takes_ids_not_text() -> None:
    """Tasks added later are held to the rule too: ids, numbers, nothing more.

    A string parameter must be named for an id; text travels as the id of
    the row that holds it.
    """
    # What a worker does at start: import every app's tasks module.
    celery_app.loader.import_default_modules()
    ours = [
        task
        for name, task in celery_app.tasks.items()
        if not name.startswith("celery.")
    ]
    assert "escalation.tasks.route_escalation_task" in {t.name for t in ours}
    for task in ours:
        hints = get_type_hints(task.run)
        for name in inspect.signature(task.run).parameters:
            kind = hints.get(name)
            assert kind in ID_TYPES or (kind is str and name.endswith("_id")), (
                f"{task.name} takes {name}: {kind}"
            )


# --- Previews -------------------------------------------------------------------------


@pytest.mark.parametrize("question", [LOST_CARD_QUESTIONS[i] for i in (0, 3, 4)])
@pytest.mark.usefixtures("bot_always_answers")
async def test_the_escalation_preview_hides_the_card(
    connect: Any, kb: Any, question: str
) -> None:
    widget = await connect()
    await resume(widget)
    await ask(widget, question)

    await widget.send_json_to({"type": "request_human"})
    await receive_until(widget, lambda f: f.get("status") == "waiting")

    escalation = await Escalation.objects.aget()
    assert "[card]" in escalation.summary
    assert not carries_card(escalation.summary)


# --- The bot's answers ------------------------------------------------------------


@pytest.mark.usefixtures("bot_always_answers")
async def test_an_answer_never_shows_or_stores_a_card_number(
    connect: Any, kb: Any, llm: Any
) -> None:
    # A misbehaving model, the number split over pieces as a stream splits it.
    lost = kb["Reporting a lost or stolen card"].id
    llm.default = Reply(
        chunks=["Your card number is 4111 11", "11 1111 11", f"11 [A{lost}]."]
    )
    widget = await connect()
    await resume(widget)

    frames = await ask(widget, "What is my card number?")

    stored = await Message.objects.filter(role="bot").alast()
    assert stored is not None and stored.text == "Your card number is [card]."
    shown = "".join(f["text"] for f in frames if f["type"] == "bot.delta")
    assert shown.startswith("Your card number is [card]")
    assert not [f for f in frames if carries_card(f)]


def test_an_answer_keeps_what_its_articles_state() -> None:
    article = "Our help centre: https://kestrel.example/help/4111111111111111"
    answer = (
        "See https://kestrel.example/help/4111111111111111, call 0800 123 4567 "
        "or pay to GB82 WEST 1234 5698 7654 32 from 4111-1111-1111-1111."
    )

    assert redact_answer(answer, article) == (
        "See https://kestrel.example/help/4111111111111111, call 0800 123 4567 "
        "or pay to [iban] from [card]."
    )


@given(
    cuts=st.lists(st.integers(1, 90), max_size=12, unique=True),
    number=card_numbers(),
)
def test_a_streamed_answer_shows_what_the_whole_answer_would(
    cuts: list[int], number: str
) -> None:
    answer = f"Card {number}, IBAN GB82 WEST 1234 5698 7654 32. Done in 3 days."
    stream = AnswerStream()
    shown = []
    for start, end in itertools.pairwise([0, *sorted(cuts), len(answer)]):
        shown.append(stream.add(answer[start:end]))
        assert not re.search(r"\d{4}\W?\d{4}", "".join(shown))
    shown.append(stream.finish())

    assert "".join(shown) == redact_answer(answer)
