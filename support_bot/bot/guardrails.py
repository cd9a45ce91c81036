"""Checks an answer must pass before a customer sees it as final.

The model may only commit to what the retrieved articles state. These checks
are deliberately strict and simple: a false alarm costs a hand-over to a
person, a miss costs a promise the company never made.

Known limits: the commitment check compares figures and topic words, not
meaning. Figures meet whatever their spelling ("two weeks" is "14 days"),
but a span in another unit family ("24 hours" for "one day") is flagged;
the never-do check (never_do.py) matches a rule's
key words, so a rule phrased very differently from the answer can be missed.
"""

import functools
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from better_profanity import profanity
from better_profanity.constants import ALLOWED_CHARACTERS
from publicsuffixlist import PublicSuffixList

from support_bot.privacy import phone_numbers

from .engine import RetrievedArticle
from .figures import MONEY, as_read, figures, stated
from .never_do import broken_rules

# Insults that the word list leaves out; a support answer never needs them.
profanity.add_censor_words(["idiot", "idiots", "stupid", "moron", "dumb", "loser"])


@dataclass(frozen=True)
class Violation:
    check: str
    detail: str


# Topics on which an answer commits the company; each needs an article that
# speaks of the same topic.
_TOPICS = {
    # "credit" as money paid in ("we will credit £50", "a credit of"), not a
    # credit card, score or limit.
    "refund": re.compile(
        r"(?i)\b(refund\w*|reimburs\w*|money back|compensat\w*|goodwill"
        r"|credit(?:s|ed|ing)?\b(?!\s+(?:cards?|scores?|limits?|ratings?|checks?"
        r"|history|reports?|unions?|lines?|agenc\w+|files?)\b))"
    ),
    "discount": re.compile(
        r"(?i)\b(discount\w*|promo\w*|coupon\w*|voucher\w*|half[\s-]+(?:price|off)"
        r"|\d+\s?%\s+off)"
    ),
    "price": re.compile(
        r"(?i)\b(price\w*|pricing|costs?|charge[sd]?|fees?|free of charge)\b"
    ),
    "legal": re.compile(r"(?i)\b(legal\w*|lawyer\w*|lawsuit\w*|liab\w*|sue|court)\b"),
}

# A link with its scheme or "www.", a bare host name ("evil.ru/login", the
# domain of an address), or an IPv4 address followed by a path or a port.
# A bare name counts when its last label is a real top-level domain (the
# public suffix list) or one kept for examples and tests; that keeps file
# names ("statement.pdf") and "e.g." out.
_URL = re.compile(
    r"(?i)\b(?:https?://[^\s<>\"')\]]+|www\.[^\s<>\"')\]]+"
    r"|\d{1,3}(?:\.\d{1,3}){3}(?=[/:]\w)[^\s<>\"')\]]*)"
)
_BARE_HOST = re.compile(
    r"(?<![\w.-])((?:[^\W_](?:[\w-]*[^\W_])?\.)+([^\W\d_][\w-]*[^\W_]))"
    r"(?![\w-])(?:/[^\s<>\"')\]]*)?"
)
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})
_SUFFIXES = PublicSuffixList(accept_unknown=False, only_icann=True)
# Top-level domains that are also file extensions or words run into a
# sentence: "archive.zip", "card.mov", "profile.photo" name files unless a
# path follows. A title-cased last label ("Settings.Security") is a sentence
# run together too, unless it is a country's code or one of the domains
# phishing uses most ("Kestrel-Secure.Com", "evil.Ru").
_FILE_LIKE_TLDS = frozenset({"zip", "mov", "photo", "photos", "pics"})
_COMMON_TLDS = frozenset(
    {"com", "net", "org", "info", "biz", "xyz", "online", "site", "top", "app", "io"}
)
# Written to hide a host from filters: "evil[.]com", "evil(dot)com".
_DEFANGED_DOT = re.compile(r"\s?[\[(]\s*(?:\.|dot)\s*[\])]\s?", re.IGNORECASE)


def _linked_hosts(text: str) -> list[str]:
    """The hosts `text` links to, each once, in lower case.

    The text is read as a browser would show it: compatibility forms folded
    (full-width letters, the ideographic full stop), invisible format
    characters dropped (a zero-width space or soft hyphen inside a name).
    """
    text = "".join(
        c
        for c in unicodedata.normalize("NFKC", text)
        if unicodedata.category(c) != "Cf"
    )
    text = _DEFANGED_DOT.sub(".", text.replace("\u3002", "."))
    hosts = [_host(m.group()) for m in _URL.finditer(text)]
    linked = _URL.sub(" ", text)
    for match in _BARE_HOST.finditer(linked):
        name, tld = match.group(1), match.group(2).lower()
        with_path = len(match.group()) > len(name)
        if not with_path and (
            tld in _FILE_LIKE_TLDS
            or not (
                match.group(2).islower()
                or match.group(2).isupper()
                or len(tld) == 2
                or tld in _COMMON_TLDS
            )
        ):
            continue
        if tld in _RESERVED_TLDS or _SUFFIXES.publicsuffix(name.lower()):
            hosts.append(name.lower())
    return [h for h in dict.fromkeys(hosts) if h]


def check_answer(
    text: str,
    articles: Sequence[RetrievedArticle],
    *,
    never_do: Sequence[str] = (),
    allowed_hosts: Collection[str] = (),
) -> list[Violation]:
    """Every reason `text` must not reach the customer as final.

    Each check reads the text as the customer sees it (`as_read`): a
    zero-width space inside "2 days" or "Dana" hides nothing from a reader,
    so it may hide nothing from a check.
    """
    stated = _stated_in_all(articles)
    text = as_read(text)
    return [
        *_unsupported_commitments(text, stated),
        *_unsupported_numbers(text, stated),
        *_profanity(text),
        *_links(text, stated, allowed_hosts),
        *_never_do(text, never_do),
        *_poses_as_a_person(text),
    ]


# The prompt's markers for a person's and the software's turns, typed in any
# width or bracket: an answer carrying one would pass for theirs.
_MARKER = re.compile(r"(?i)[(\[{]\s*(?:human\s*agent|system\s*notice)\s*[)\]}]")
# Words that place a name on the staff, and words by which the bot names
# itself ("I'm Kestrel, the bank's assistant").
_STAFF = (
    r"(?:support|team|service|bank|agent|advis[eo]r|colleague|staff|department"
    r"|desk|care)"
)
_BOT_WORDS = r"(?:assistant|bot|chatbot|virtual|automated|ai)"
# A person's name as written in a greeting or a signature: "Dana", "DANA",
# "Mary-Jane", "O'Brien", "Dana Smith".
_NAME = (
    r"(?-i:(?:[A-Z](?:[a-z]+|'[A-Z][a-z]+)(?:[-'][A-Z]?[a-z]+)*|[A-Z]{2,})"
    r"(?:\s+[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)*)?)"
)
# Within the sentence: staff words ahead, and none of the bot's own.
_AS_STAFF = rf"(?![^.!?\n]{{0,40}}\b{_BOT_WORDS}\b)(?=[^.!?\n]{{0,40}}\b{_STAFF})"
# "I'm Dana from support", "this is Sam, your adviser", "Dana here from the
# team", "Dana from support here", "Dana speaking", "you're chatting with
# Dana, a member of our team", "I'm a real person", "I'm definitely a
# human", "I'm not a bot", "I'm one of the service staff", "I'm an employee",
# "I work in support", "Agent Dana: ...", "Kind regards, Dana (Support)".
_PERSON = re.compile(
    rf"""(?x)
    (?:
        \b(?:i\s*am|i'm|this\s+is|my\s+name\s+is|my\s+name's|it's
            |you're\s+(?:chatting|talking|speaking)\s+(?:with|to)
            |you\s+are\s+(?:chatting|talking|speaking)\s+(?:with|to))\s+
        (?:
            {_NAME}\s*
            (?:[^\w\s(]{{0,3}}\s*
               (?:from|of|at|in|on|with|and\s+i|here\s+from|your|a|an|the|one|part)\b
             | \()
            {_AS_STAFF}
          | (?:definitely\s+|really\s+|actually\s+|truly\s+|certainly\s+)?
            (?:
                (?:a\s+|an\s+)?(?:real|human|live)\s+(?:person|human|agent|being)?
              | (?:a\s+)?(?:person|human)\b(?!\s+(?:agent|colleague))
            )
          | not\s+(?:a\s+|an\s+)?(?:bot|robot|chatbot|ai|machine|computer|program
                |automated|virtual)\b
          | (?:one\s+of|a\s+member\s+of|part\s+of|on)\s+(?:the|our)\b
            (?![^.!?\n]{{0,40}}\b{_BOT_WORDS})
            (?=[^.!?\n]{{0,40}}\b{_STAFF})
          | (?:a|an)\s+(?:[\w-]+\s+){{0,2}}(?:employee|staff\s+member|team\s+member)\b
        )
      | \b{_NAME}\s+(?:here|speaking)\b\s*(?:,|:|from|at|on|with|of)
        {_AS_STAFF}
      | \b(?:hi|hello|hey|greetings)\b[\s,!]*(?:it's\s+|i'm\s+)?{_NAME}\s*
        [^\w\s]{{0,3}}\s*(?:from|of|at|here|with|on)\b{_AS_STAFF}
      | \bas\s+(?:a|an)\s+(?:real|human|live)\s+(?:person|human|agent|being)\b
      | (?:^|\n)\s*[-\u2013\u2014]+\s*{_NAME}\s*[,(]{_AS_STAFF}
      | \b{_NAME}\s+from\s+(?:the\s+|our\s+)?(?:[\w-]+\s+){{0,2}}{_STAFF}\w*
        (?:\s+team)?\s+here\b
      | \bi\s+(?:work|am\s+working)\s+(?:in|for|on|at|with)\b
        {_AS_STAFF}
      | (?:^|\n)\s*(?:human\s+agent|support\s+agent|agent\s+{_NAME})
        \s*[:\u2013\u2014-]
      | \b(?:regards|best|thanks|cheers|sincerely|yours)\s*,?\s*\n?\s*{_NAME}
        \s*(?:\(|,|-|\u2013|\u2014|from|\n)\s*{_AS_STAFF}
    )
    """,
    re.IGNORECASE,
)


def _poses_as_a_person(text: str) -> list[Violation]:
    """Precondition: `text` is as read (check_answer)."""
    if _MARKER.search(text) or _PERSON.search(text):
        return [Violation("impersonation", "the answer presents itself as a person")]
    return []


@dataclass(frozen=True)
class _Stated:
    """What the given articles state, as far as the checks look."""

    # In one spelling each (figures.py), so "£50" meets "fifty pounds".
    figures: frozenset[str]
    topics: frozenset[str]
    hosts: frozenset[str]
    # Phone numbers, as E.164.
    phones: frozenset[str]


def _stated_in_all(articles: Sequence[RetrievedArticle]) -> _Stated:
    each = [_stated_in(a.body) for a in articles]
    return _Stated(
        figures=frozenset().union(*(s.figures for s in each)),
        topics=frozenset().union(*(s.topics for s in each)),
        hosts=frozenset().union(*(s.hosts for s in each)),
        phones=frozenset().union(*(s.phones for s in each)),
    )


# Reading an article is most of the checks' work (about 0.3 ms each), and
# the same articles come with many answers, in ever other combinations:
# what one states is kept per article, for as many as a knowledge base has.
@functools.lru_cache(maxsize=4096)
def _stated_in(sources: str) -> _Stated:
    sources = as_read(sources)
    amounts = stated(sources)
    topics = {t for t, pattern in _TOPICS.items() if pattern.search(sources)}
    # An article that states an amount of money speaks of a price, whether
    # or not it says "costs" ("Express delivery: £9.99").
    if any(figure[0] in MONEY for figure in amounts):
        topics.add("price")
    return _Stated(
        figures=frozenset(amounts),
        topics=frozenset(topics),
        hosts=frozenset(_linked_hosts(sources)),
        phones=frozenset(phone_numbers(sources)),
    )


def _unsupported_commitments(text: str, stated: _Stated) -> list[Violation]:
    found = [
        Violation("unsupported_commitment", f"the articles do not state {words!r}")
        for figure, words in figures(text).items()
        if figure not in stated.figures
    ]
    found += [
        Violation("unsupported_commitment", f"no article speaks of {topic}")
        for topic, pattern in _TOPICS.items()
        if topic not in stated.topics and pattern.search(text)
    ]
    return found


def _unsupported_numbers(text: str, stated: _Stated) -> list[Violation]:
    """A phone number no article gives: a customer would call it."""
    return [
        Violation("unsupported_contact", f"the articles do not give {written!r}")
        for number, written in phone_numbers(text).items()
        if number not in stated.phones
    ]


def _profanity(text: str) -> list[Violation]:
    if _PROFANITY.found_in(text):
        return [Violation("profanity", "the answer contains profanity or an insult")]
    return []


class _ProfanityIndex:
    """better-profanity's word list and spellings ("sh1t", "@ss"), looked up fast.

    The library's own check compares every word of a text with each of its
    ~900 entries in Python: 30 ms for one answer here, more than everything
    else the bot does for it. Here the entries form a tree of letters, and the
    text is walked through it once, each written character standing for the
    letters the library lets it stand for ("1" for "i" or "l", "*" for any
    vowel). A word matches alone or run together with the words after it,
    written together ("f u c k") or apart ("2 girls 1 cup").
    """

    def __init__(self) -> None:
        self.root: _Node = {}
        for entry in profanity.CENSOR_WORDSET:
            node = self.root
            for char in str(entry).lower():
                node = node.setdefault(char, {})
            node[_END] = {}
        self.reads_as: dict[str, tuple[str, ...]] = {}
        mapping = profanity.CHARS_MAPPING
        written = {c for spellings in mapping.values() for c in spellings}
        for char in written:
            letters = {
                letter for letter, spellings in mapping.items() if char in spellings
            }
            if char not in mapping:
                letters.add(char)
            self.reads_as[char] = tuple(letters)

    def _walk(self, nodes: list["_Node"], written: str) -> list["_Node"]:
        for char in written:
            nodes = [
                child
                for node in nodes
                for letter in self.reads_as.get(char, (char,))
                if (child := node.get(letter)) is not None
            ]
            if not nodes:
                break
        return nodes

    def found_in(self, text: str) -> bool:
        lowered = text.lower()
        words = list(_PROFANITY_WORD.finditer(lowered))
        for i, first in enumerate(words):
            together = apart = self._walk([self.root], first.group())
            if not together:
                continue
            for k in range(i, len(words)):
                if k > i:
                    together = self._walk(together, words[k].group())
                    between = lowered[words[k - 1].end() : words[k].end()]
                    apart = self._walk(apart, between)
                if not together and not apart:
                    break
                if any(_END in node for node in together + apart):
                    return True
                # An entry may end in signs the words leave out ("shi+").
                signs = _SIGNS.match(lowered, words[k].end()) if apart else None
                if signs and self._ends_within(apart, signs.group()):
                    return True
        return False

    def _ends_within(self, nodes: list["_Node"], written: str) -> bool:
        """Whether an entry ends somewhere along `written`."""
        for i in range(1, len(written) + 1):
            reached = self._walk(nodes, written[:i])
            if not reached:
                return False
            if any(_END in node for node in reached):
                return True
        return False


_Node = dict[str, "_Node"]
_END = ""  # marks the last letter of an entry; never a written character
_PROFANITY_WORD = re.compile(
    "[" + "".join(re.escape(c) for c in sorted(ALLOWED_CHARACTERS)) + "]+"
)
_SIGNS = re.compile(r"\S+")
_PROFANITY = _ProfanityIndex()


def _host(url: str) -> str:
    url = url.rstrip(".,;:!?")  # the end of the sentence, not of the link
    if "://" not in url:
        url = "//" + url
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def _links(
    text: str, stated: _Stated, allowed_hosts: Collection[str]
) -> list[Violation]:
    allowed = {h.lower().removeprefix("www.") for h in allowed_hosts}
    allowed |= stated.hosts
    return [
        Violation("link_host", f"a link to {host} is not allowed")
        for host in _linked_hosts(text)
        if host not in allowed and not any(host.endswith("." + a) for a in allowed)
    ]


def _never_do(text: str, rules: Sequence[str]) -> list[Violation]:
    return [Violation("never_do", rule) for rule in broken_rules(text, rules)]
