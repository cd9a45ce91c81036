"""Redaction of personal data in customer text before it leaves our hands.

`redact` replaces card numbers, IBANs, phone numbers and email addresses by
typed placeholders ("[card]", "[iban]", "[phone]", "[email]"). It runs on text
sent to a language model, on log records, and on previews shown outside the
conversation view (escalation summaries). The stored messages keep the real
text: an agent working the conversation needs it.

`redact_answer` and `AnswerStream` do the same for the bot's own answers, for
card numbers and IBANs only. The model never sees the customer's, so one in
an answer is made up or injected, and a bot that writes out a full card
number teaches customers to expect one there. Phone numbers and addresses
stay: the articles give the bank's own, and the model may reformat them.

Detection reads the text as people type it, not only as ASCII: compatibility
forms are folded (NFKC: full-width digits from a Japanese or Chinese input
method, non-breaking and ideographic spaces), invisible format characters
(zero-width spaces, soft hyphens) are ignored and every dash reads as "-".
Placeholders then replace the original characters, so the rest of the text
reads as it was written.

Each kind is validated, not just pattern-matched, so ordinary text survives:
an order number that fails the Luhn check stays, as do amounts, dates, times
and "3 to 5 working days". The passes run in an order that keeps one kind from
eating another: an email address can hold digits that look like a phone
number, and the digits of an IBAN can pass the Luhn check.

Cost on a laptop CPU (tests/test_privacy.py has the figures): about a
microsecond for a short message with no digit, no "@" and no spelled-out
"dot" or bracketed "at", where every pass is skipped; 0.25 ms for a short
message with a phone number; 9 ms for 4,000 characters packed with numbers,
nearly all of it in phonenumbers' matcher.
"""

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from stdnum import iban, luhn

from support_bot.bot.engine import BotRequest, Turn

CARD = "[card]"
IBAN = "[iban]"
PHONE = "[phone]"
EMAIL = "[email]"

# Used when settings are not configured yet (a log record emitted while
# Django starts).
DEFAULT_PHONE_REGION = "GB"

Span = tuple[int, int]

# Anything shaped like local@domain. Whether it is an address is then up to
# Django's validator (see _emails).
_EMAIL_CANDIDATE = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_EMAIL_TRAILING = ".!?'"
# An address written to slip past filters: "dana [at] example [dot] com",
# "dana(at)example.com", "dana at example dot com". The "at" is bracketed, or
# it and a "dot" are both spelled out, so "look at example.com" stays; an "@"
# with spaces around it counts as bracketed.
_SPELLED_AT = r"\s*[\[({<]\s*at\s*[\])}>]\s*|\s+@\s*|\s*@\s+"
_SPELLED_DOT = r"\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+"
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.%+-])(?P<local>[\w.%+-]+)(?P<at>{_SPELLED_AT}|\s+at\s+)"
    rf"(?P<domain>{_LABEL}(?:(?:{_SPELLED_DOT}|\.){_LABEL})+)",
    re.IGNORECASE,
)
_DOMAIN_DOT = re.compile(rf"{_SPELLED_DOT}|\.", re.IGNORECASE)

# Groups of digits separated by one space, dot, dash or slash (a space may
# stand either side of the sign), not glued to Latin letters or digits (so
# "ORD4111111111111111" or the hex groups of a UUID are not candidates; a
# number written straight after Japanese or Chinese text still is one).
_DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9_])\d+(?:(?: ?[./-] ?| )\d+)*(?![A-Za-z0-9_])")
_DIGIT_GROUP = re.compile(r"\d+")
CARD_DIGITS = range(13, 20)
# Cards are written in groups of 3 to 6 (4-4-4-4, 4-6-5, 4-4-4-4-3). Shorter
# groups are lists of small numbers ("1 2 3 4 ..."), whose windows would pass
# Luhn one time in ten.
CARD_GROUP_DIGITS = range(3, 7)

# No phone number in any numbering plan has fewer than four digits, written
# together or split by spaces and signs: text without such a run skips
# phonenumbers' matcher, most of the cost of redaction ("confidence 0.82").
_PHONE_DIGITS = re.compile(r"\d(?:[\s().\-/]*\d){3}")
# Digits a number not valid in its plan needs to be taken as one (_phones).
PHONE_WRITTEN_DIGITS = 10

# A country code and check digits, then the account in one block or in
# groups; ISO 13616 caps the compact form at 34 characters.
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}[A-Za-z0-9]*")
_IBAN_GROUP = re.compile(r"[ .-]([A-Za-z0-9]+)(?![A-Za-z0-9])")
IBAN_LENGTH = range(15, 35)


# A conversation's history goes to the model again with every answer, so the
# same turns are redacted again and again: results are kept per text, for as
# many recent texts as a few hundred conversations hold in their prompts.
REDACTED_KEEP = 4096
_ANY_DIGIT = re.compile(r"\d")
# Digits of any script, the "@" of any width, and an "at" or a "dot" spelled
# out for an address.
_MAY_HOLD = re.compile(r"[\d@\uff20\ufe6b]|[\[({<]\s*at\b|\bdot\b", re.IGNORECASE)


def redact(text: str, *, region: str | None = None) -> str:
    """`text` with personal data replaced by typed placeholders.

    `region` is where a phone number written without "+" and a country code is
    assumed to be from; it defaults to the PRIVACY_PHONE_REGION setting.
    """
    if not _MAY_HOLD.search(text) and (
        text.isascii() or not _MAY_HOLD.search(_fold(text).text)
    ):
        return text
    return _redact(text, region or _phone_region())


@functools.lru_cache(maxsize=REDACTED_KEEP)
def _redact(text: str, region: str) -> str:
    text = _redact_kind(text, _spelled_emails, EMAIL)
    if "@" in _fold(text).text:
        text = _redact_kind(text, _emails, EMAIL)
    if not _ANY_DIGIT.search(text):
        return text
    text = _redact_kind(text, _ibans, IBAN)
    text = _redact_kind(text, _cards, CARD)
    if not _PHONE_DIGITS.search(_fold(text).text):
        return text
    return _redact_kind(text, lambda folded: _phones(folded, region), PHONE)


def _redact_kind(
    text: str, find: Callable[[str], Iterable[Span]], placeholder: str
) -> str:
    """`text` with what `find` sees in its folded form replaced."""
    folded = _fold(text)
    return _replace(
        text, (folded.source(span) for span in find(folded.text)), placeholder
    )


@dataclass(frozen=True)
class _Folded:
    """Text as the detectors read it, and where each character came from."""

    text: str
    # For each character of `text`, the span of the original it stands for;
    # None when the two are the same.
    origins: list[Span] | None = None

    def source(self, span: Span) -> Span:
        if self.origins is None:
            return span
        start, end = span
        return self.origins[start][0], self.origins[end - 1][1]


# Dashes that NFKC leaves as they are; people and word processors put them
# between digit groups where a hyphen was meant.
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_DOTS = dict.fromkeys(map(ord, "\u00b7\u30fb"), ".")


def _fold(text: str) -> _Folded:
    if text.isascii():
        return _Folded(text)
    chars: list[str] = []
    origins: list[Span] = []
    for i, char in enumerate(text):
        folded = _fold_char(char)
        chars.append(folded)
        origins += [(i, i + 1)] * len(folded)
    return _Folded("".join(chars), origins)


@functools.lru_cache(maxsize=1024)
def _fold_char(char: str) -> str:
    if char.isascii():
        return char
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category == "Nd":  # any script's digits: Arabic-Indic, Devanagari, ...
        return str(unicodedata.decimal(char))
    return unicodedata.normalize("NFKC", char).translate(_DASHES).translate(_DOTS)


def redact_answer(text: str, stated: str = "") -> str:
    """The bot's `text` with card numbers and IBANs replaced by placeholders.

    One that `stated` (the articles the answer was written from) has exactly
    as written is ours, an id in a help-centre link say, and stays.
    """
    if not _ANY_DIGIT.search(text):
        return text
    for find, placeholder in ((_ibans, IBAN), (_cards, CARD)):
        folded = _fold(text)
        spans = (folded.source(span) for span in find(folded.text))
        kept = [(start, end) for start, end in spans if text[start:end] not in stated]
        text = _replace(text, kept, placeholder)
    return text


class AnswerStream:
    """An answer's pieces, as the model writes them, redacted as `redact_answer`.

    A number can arrive split over pieces, so what could still grow into a
    card number or an IBAN (the last word, or a run of digit groups at the
    end of the text so far) is held back until the text moves past it.

    What is shown is redacted a stretch at a time, from where the last
    stretch ended to where the held-back part begins: no card number or
    IBAN crosses that point, since anything that could still grow into one
    was held back. Redacting the whole text so far for every piece cost
    time in the square of the answer's length.
    """

    def __init__(self, stated: str = "") -> None:
        self._stated = stated
        self._text = ""
        # Where the text not yet shown begins.
        self._settled = 0

    def add(self, piece: str) -> str:
        """What can be shown now, after what `add` returned before."""
        self._text += piece
        return self._show(_open_from(self._text))

    def finish(self) -> str:
        """The rest, once the model has finished."""
        return self._show(len(self._text))

    def _show(self, upto: int) -> str:
        if upto <= self._settled:
            return ""
        stretch = self._text[self._settled : upto]
        self._settled = upto
        return redact_answer(stretch, self._stated)


OPEN_REACH = 100
_IBAN_SO_FAR = r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}[A-Za-z0-9]*(?:[ .-][A-Za-z0-9]+)*\Z"
# What may still grow while the text ends in a letter or digit: the word, a
# run of digit groups, an IBAN's groups.
_OPEN_ENDS = [
    re.compile(r"[^\W_]+\Z"),
    re.compile(r"(?<![A-Za-z0-9_])\d+(?:(?: ?[./-] ?| )\d+)*\Z"),
    re.compile(_IBAN_SO_FAR),
]
# And while it ends in a separator that another group may follow: groups of a
# card's sizes (a lone "5 " starts none), an IBAN's groups.
_OPEN_AFTER_SEPARATOR = [
    re.compile(r"(?<![A-Za-z0-9_])\d{3,6}(?:(?: ?[./-] ?| )\d{3,6})*\Z"),
    re.compile(_IBAN_SO_FAR),
]


def _open_from(text: str) -> int:
    """Where the part of `text` that later pieces could still change begins."""
    folded = _fold(text).text
    end = len(folded.rstrip(" ./-"))
    patterns = _OPEN_ENDS if end == len(folded) else _OPEN_AFTER_SEPARATOR
    # The longest card or IBAN, however spaced, is well within this reach.
    window = max(0, end - OPEN_REACH)
    starts = [
        match.start()
        for pattern in patterns
        if (match := pattern.search(folded, window, end))
    ]
    if not starts:
        return len(text)
    return _fold(text).source((min(starts), min(starts) + 1))[0]


def redact_turns(turns: Iterable[Turn]) -> list[Turn]:
    return [replace(turn, text=redact(turn.text)) for turn in turns]


def redact_request(request: BotRequest) -> BotRequest:
    """The request with the customer's words redacted; articles are ours."""
    return replace(
        request,
        question=redact(request.question),
        history=redact_turns(request.history),
        summary=redact(request.summary),
    )


def _phone_region() -> str:
    if not settings.configured:
        return DEFAULT_PHONE_REGION
    return str(getattr(settings, "PRIVACY_PHONE_REGION", DEFAULT_PHONE_REGION))


def _replace(text: str, spans: Iterable[Span], placeholder: str) -> str:
    """Replace non-overlapping spans, given in order."""
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts += [text[last:start], placeholder]
        last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _emails(text: str) -> Iterable[Span]:
    # Django's validator is the rule the product already uses to accept an
    # address (actions.save_contact_email), so whatever we would store as an
    # email is also redacted as one, internationalised domains included; a
    # hand-written "complete" pattern would drift from it.
    for match in _EMAIL_CANDIDATE.finditer(text):
        candidate = match.group().rstrip(_EMAIL_TRAILING)
        if _is_email(candidate):
            yield match.start(), match.start() + len(candidate)


def _spelled_emails(text: str) -> Iterable[Span]:
    for match in _OBFUSCATED_EMAIL.finditer(text):
        at_bracketed = not match.group("at").isspace()
        dots = _DOMAIN_DOT.findall(match.group("domain"))
        if not at_bracketed and all(dot == "." for dot in dots):
            continue
        domain = _DOMAIN_DOT.sub(".", match.group("domain"))
        if _is_email(f"{match.group('local')}@{domain}"):
            yield match.span()


def _is_email(candidate: str) -> bool:
    try:
        validate_email(candidate)
    except ValidationError:
        return False
    return True


def _ibans(text: str) -> Iterable[Span]:
    position = 0
    while match := _IBAN_START.search(text, position):
        start = match.start()
        # Following groups are taken while they could still be part of one
        # IBAN; the longest valid prefix wins, so a trailing word is left out.
        ends = [match.end()]
        length = len(match.group())
        while length < IBAN_LENGTH.stop and (
            group := _IBAN_GROUP.match(text, ends[-1])
        ):
            length += len(group.group(1))
            ends.append(group.end())
        end = next((e for e in reversed(ends) if iban.is_valid(text[start:e])), None)
        if end is not None:
            yield start, end
        position = end or match.end()


def _cards(text: str) -> Iterable[Span]:
    for run in _DIGIT_RUN.finditer(text):
        groups = list(_DIGIT_GROUP.finditer(text, run.start(), run.end()))
        first = 0
        while first < len(groups):
            taken = _card_at(groups[first:])
            if taken is None:
                first += 1
                continue
            yield groups[first].start(), groups[first + taken - 1].end()
            first += taken


def _card_at(groups: list[re.Match[str]]) -> int | None:
    """How many of `groups`, from the first, make a card number, if any do."""
    # Digits after taking one group, two groups, ...: one group stands alone,
    # several must each look like a card's group.
    totals = [len(groups[0].group())]
    if totals[0] in CARD_GROUP_DIGITS:
        for group in groups[1:]:
            size = len(group.group())
            if size not in CARD_GROUP_DIGITS or totals[-1] + size >= CARD_DIGITS.stop:
                break
            totals.append(totals[-1] + size)
    digits = "".join(group.group() for group in groups[: len(totals)])
    for taken in range(len(totals), 0, -1):
        number = digits[: totals[taken - 1]]
        if len(number) in CARD_DIGITS and luhn.is_valid(number):
            return taken
    return None


def phone_numbers(text: str) -> dict[str, str]:
    """Each phone number of `text` (as redaction finds them) in E.164, with
    the words it was read from."""
    found: dict[str, str] = {}
    for match in _phone_matches(text, _phone_region()):
        e164 = phonenumbers.format_number(
            match.number, phonenumbers.PhoneNumberFormat.E164
        )
        found.setdefault(e164, match.raw_string)
    return found


def _phones(text: str, region: str) -> Iterable[Span]:
    return ((match.start, match.end) for match in _phone_matches(text, region))


def _phone_matches(text: str, region: str) -> Iterable[phonenumbers.PhoneNumberMatch]:
    # A number valid in its region's numbering plan is one; that check keeps
    # dates, times, amounts and reference numbers out. So is a number written
    # the way people write their own, with a "+", a leading 0 or a bracketed
    # area code and at least ten digits, where the plan merely allows its
    # length: the ranges kept for fiction and for tests (07700 900123,
    # 555-01xx) are not valid, and they are what people paste in examples.
    # Looser than that matched "100 000 000" and "1.2.3.4".
    leniency = phonenumbers.Leniency.POSSIBLE
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
        if phonenumbers.is_valid_number(match.number) or _written_as_phone(
            match.raw_string
        ):
            yield match


def _written_as_phone(raw: str) -> bool:
    return raw[0] in "+0(" and len(_ANY_DIGIT.findall(raw)) >= PHONE_WRITTEN_DIGITS
