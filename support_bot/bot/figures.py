"""The figures of a promise in a text, however they are spelled.

Money, percentages, time spans and relative days ("tomorrow") are read into
one spelling each, so an answer and an article that state the same figure
meet whatever words either uses: "fifty pounds" is "£50", "half price" is
"50%", "a couple of hours" is "2 hours", "two weeks" is "14 days".
Number words are read by text2num; the few phrases it leaves alone (a
couple, half, a fortnight, "a" for one) are rewritten first.

Known limit: spans are only converted within a unit's family (weeks to
days, years to months), so "24 hours" and "one day" remain two figures.
"""

import re
import unicodedata

from text_to_num import alpha2digit

_NUMBER = r"\d[\d,]*(?:\.\d+)?"
# Longest first: the alternation takes the first that fits ("hour" before
# "h"). No "d" for days: "3D Secure" is a bank's, not a span.
_UNITS = r"minute|min|hour|hr|h|day|week|wk|fortnight|month|mth|year|yr"
_WEEKDAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"

_FIGURE = re.compile(
    rf"""(?x)
    (?P<symbol>[£$€])\s?(?P<amount>{_NUMBER})
    | \b(?P<code>usd|gbp|eur)\s?(?P<amount3>{_NUMBER})
    | (?P<amount2>{_NUMBER})\s?(?P<currency>pounds?|quid|dollars?|euros?|usd|gbp|eur)\b
    | (?P<percent>{_NUMBER})\s?(?:%|percent\b|per\s?cent\b)
    | \b(?P<hour>\d{{1,2}})(?:[:.](?P<minute>[0-5]\d))?\s?(?P<half>[ap])\.?m\b\.?
    | \b(?P<hour24>[01]?\d|2[0-3]):(?P<minute24>[0-5]\d)\b
    | (?P<low>{_NUMBER})(?:\s?(?:-|to|or)\s?(?P<high>{_NUMBER}))?[\s-]?
      (?P<kind>(?:working|business|calendar)\s)?(?P<unit>{_UNITS})s?\b
    | (?P<when>tomorrow|tonight|overnight|later\stoday|same\sday|within\sthe\shour
      |end\sof\s(?:the\s)?(?:day|week|month)|close\sof\sbusiness
      |(?:next|by|until|before)\s(?:week|month|working\sday|business\sday
        |{_WEEKDAYS})
      |on\s(?:{_WEEKDAYS}))
    """
)

# What text2num leaves in words, as numbers it reads.
_PHRASES = [
    (re.compile(r"\bhalf[\s-]+(?:price|off)\b"), "50% off"),
    (re.compile(r"\bhalf\s+an?\s+hour\b"), "30 minutes"),
    (re.compile(r"\ban?\s+hour\s+and\s+a\s+half\b"), "90 minutes"),
    (re.compile(r"\ba\s+couple\s+(?:of\s+)?"), "2 "),
    (re.compile(r"\ba\s+dozen\s+"), "12 "),
    # "within a day", "in an hour": "a" is one.
    (re.compile(rf"\ban?\s+(?=(?:working\s|business\s)?(?:{_UNITS})\b)"), "1 "),
]
_CURRENCIES = {"pound": "£", "quid": "£", "gbp": "£", "dollar": "$", "usd": "$"}
_CURRENCIES |= {"euro": "€", "eur": "€"}
# A unit as a multiple of its family's smallest.
_SPANS = {
    "minute": ("minute", 1),
    "min": ("minute", 1),
    "hour": ("hour", 1),
    "hr": ("hour", 1),
    "h": ("hour", 1),
    "day": ("day", 1),
    "week": ("day", 7),
    "wk": ("day", 7),
    "fortnight": ("day", 14),
    "month": ("month", 1),
    "mth": ("month", 1),
    "year": ("month", 12),
    "yr": ("month", 12),
}


def figures(text: str) -> dict[str, str]:
    """Each figure of `text` in its one spelling, with the words it was read from."""
    plain = _readable(text)
    return {_spelling(m): m.group().strip() for m in _FIGURE.finditer(plain)}


# The hyphens and dashes a range can be written with (an en dash in "3 to 5
# days", say), as "-".
_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
)


# Apostrophes as typed by other keyboards and fonts, as "'".
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2018\u2019\u02bc\u2032\u00b4", "'"))


def as_read(text: str) -> str:
    """`text` as a reader sees it: compatibility forms folded (full-width
    letters), invisible format characters dropped (a zero-width space or a
    soft hyphen inside a word), every apostrophe as "'"."""
    if text.isascii():
        return text  # nothing of the above is ASCII
    plain = unicodedata.normalize("NFKC", text)
    plain = "".join(c for c in plain if unicodedata.category(c) != "Cf")
    return plain.translate(_APOSTROPHES)


def _readable(text: str) -> str:
    plain = as_read(text).lower()
    plain = plain.translate(_DASHES)
    for pattern, replacement in _PHRASES:
        plain = pattern.sub(replacement, plain)
    # threshold=0: "two weeks" too, not only numbers above ten.
    return str(alpha2digit(plain, "en", threshold=0))


def _spelling(match: re.Match[str]) -> str:
    if match["symbol"]:
        return match["symbol"] + _amount(match["amount"])
    if match["currency"]:
        return _CURRENCIES[match["currency"].rstrip("s")] + _amount(match["amount2"])
    if match["code"]:
        return _CURRENCIES[match["code"]] + _amount(match["amount3"])
    if match["half"]:
        # "5pm" and "17:00" are one time; "12am" is midnight.
        hour = int(match["hour"]) % 12 + (12 if match["half"] == "p" else 0)
        return f"{hour:02d}:{match['minute'] or '00'}"
    if match["hour24"]:
        return f"{int(match['hour24']):02d}:{match['minute24']}"
    if match["percent"]:
        return _amount(match["percent"]) + "%"
    if match["when"]:
        return " ".join(match["when"].split())
    family, size = _SPANS[match["unit"]]
    kind = "working " if match["kind"] and match["kind"].strip() != "calendar" else ""
    if kind and family == "day" and size > 1:
        # "two working weeks" is ten working days.
        size = size // 7 * 5
    values = [match["low"], match["high"]] if match["high"] else [match["low"]]
    span = "-".join(_amount(value, size) for value in values)
    return f"{span} {kind}{family}"


def _amount(written: str, times: int = 1) -> str:
    value = float(written.replace(",", "")) * times
    return f"{value:g}" if value != int(value) else str(int(value))
