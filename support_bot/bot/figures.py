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
# Short forms only after a word that makes them a day ("by Fri"): alone,
# "sat", "sun" and "wed" are other words.
_SHORT_DAYS = r"mon|tues?|wed|thu(?:rs?)?|fri|sat|sun"
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?"
    r"|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)

_FIGURE = re.compile(
    rf"""(?x)
    (?P<symbol>[£$€¥])\s?(?P<amount>{_NUMBER})
    | \b(?P<code>usd|gbp|eur|jpy|chf)\s?(?P<amount3>{_NUMBER})
    | (?P<amount2>{_NUMBER})\s?(?P<currency>pounds?|quid|dollars?|bucks?|euros?|yen
        |usd|gbp|eur|jpy|chf)\b
    | (?P<amount4>{_NUMBER})\s?(?P<symbol2>[£$€¥])
    | (?P<pence>\d{{1,3}})\s?(?:p|pence)\b
    | (?P<percent>{_NUMBER})\s?(?:%|percent\b|per\s?cent\b)
    | \b(?P<hour>\d{{1,2}})(?:[:.](?P<minute>[0-5]\d))?\s?(?P<half>[ap])\.?m\b\.?
    | \b(?P<hour24>[01]?\d|2[0-3]):(?P<minute24>[0-5]\d)\b
    | \b(?:at|by|before|after|until|from)\s
      (?P<hourdot>[01]?\d|2[0-3])\.(?P<minutedot>[0-5]\d)\b
    | \b(?P<oclock>\d{{1,2}})\s?o'?clock\b
    | \b(?P<noon>noon|midday|midnight)\b
    | \b(?P<date>\d{{1,2}})(?:st|nd|rd|th)?\s(?:of\s)?(?P<month>{_MONTHS})\b
    | \b(?P<month2>{_MONTHS})\s(?P<date2>\d{{1,2}})(?:st|nd|rd|th)?\b
    | \bthe\s(?P<date3>\d{{1,2}})(?:st|nd|rd|th)\b
    | (?:\b(?:on|by|until|before|this|next|from)\s)?(?P<weekday>{_WEEKDAYS})\b
    | \b(?:on|by|until|before|this|next|from)\s(?P<shortday>{_SHORT_DAYS})\b\.?
    | (?P<low>{_NUMBER})(?:\s?(?:-|to|or|and)\s?(?P<high>{_NUMBER}))?[\s-]?
      (?P<kind>(?:working|business|calendar)\s)?(?P<unit>{_UNITS})s?\b
    | (?P<when>tomorrow|tonight|overnight|later\stoday|same\sday|within\sthe\shour
      |end\sof\s(?:the\s)?(?:day|week|month)|close\sof\sbusiness
      |(?:next|by|until|before)\s(?:week|month|working\sday|business\sday))
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
_CURRENCIES |= {"euro": "€", "eur": "€", "buck": "$", "yen": "¥", "jpy": "¥"}
_CURRENCIES |= {"chf": "CHF "}
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


# Characters that show nothing besides the format characters (Unicode's
# default-ignorable ones that are not of category Cf): the combining grapheme
# joiner, the Hangul fillers, variation selectors and the like.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f"
    "\uffa0\U000e0100-\U000e01ef]"
)


def as_read(text: str) -> str:
    """`text` as a reader sees it: compatibility forms folded (full-width
    letters), characters that show nothing dropped (a zero-width space, a
    soft hyphen or a Hangul filler inside a word), every apostrophe as "'"."""
    if text.isascii():
        return text  # nothing of the above is ASCII
    plain = unicodedata.normalize("NFKC", text)
    plain = "".join(c for c in plain if unicodedata.category(c) != "Cf")
    return _IGNORABLE.sub("", plain).translate(_APOSTROPHES)


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
    if match["symbol2"]:
        return match["symbol2"] + _amount(match["amount4"])
    if match["pence"]:
        return "£" + _amount(str(int(match["pence"]) / 100))
    if match["hourdot"]:
        return f"{int(match['hourdot']):02d}:{match['minutedot']}"
    if match["oclock"]:
        return f"{int(match['oclock']):02d}:00"
    if match["noon"]:
        return "00:00" if match["noon"] == "midnight" else "12:00"
    if match["month"] or match["month2"]:
        day = int(match["date"] or match["date2"])
        return f"{day} {(match['month'] or match['month2'])[:3]}"
    if match["date3"]:
        return f"day {int(match['date3'])}"
    if match["weekday"]:
        return match["weekday"]
    if match["shortday"]:
        return next(d for d in _WEEKDAYS.split("|") if d.startswith(match["shortday"]))
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


_RANGE = re.compile(r"(?P<low>[\d.]+)-(?P<high>[\d.]+) (?P<unit>.+)")
MONEY = "£$€"


def stated(text: str) -> set[str]:
    """The figures a source states, for an answer to meet: each figure, and
    both ends of a range ("3 to 5 days" also states "up to 5 days")."""
    found = set(figures(text))
    for figure in list(found):
        if match := _RANGE.fullmatch(figure):
            found |= {
                f"{match['low']} {match['unit']}",
                f"{match['high']} {match['unit']}",
            }
    return found


def _amount(written: str, times: int = 1) -> str:
    value = float(written.replace(",", "")) * times
    return f"{value:g}" if value != int(value) else str(int(value))
