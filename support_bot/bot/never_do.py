"""Whether an answer breaks a never-do guideline ("Never ask for a PIN").

A rule is read as a verb and what it must not be done to: "Never ask the
customer for their full card number, PIN or passcode" is "ask" and three
alternatives, "card number", "PIN" and "passcode", each forbidden alone.
Words that carry nothing forbidden ("the customer", "their", "full") are
left out of both.

How a sentence breaks the rule depends on the verb:

- A request ("ask", "request", "collect"): the answer asks the customer for
  one of the things, in any of the ways a person asks. "Please send me your
  passcode", "Can you tell me your PIN?", "I'll need your card number",
  "What is your PIN?".
- Saying ("mention", "discuss"): one of the things is named at all.
- Any other verb ("promise"): the verb and one of the things in one sentence.

A clause that negates before the verb ("we will never ask for your PIN",
"don't share your PIN with anyone") breaks nothing: answers warn customers
in exactly those words.

Known limit: words match on their first five letters, not their meaning, so
a rule or an answer that words the same thing differently ("secret number"
for "PIN") is missed.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CLAUSE_BREAK = re.compile(r"[,;:()\u2013\u2014]|\s-\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_ALTERNATIVES = re.compile(r",|/|\b(?:or|and|nor|and/or)\b")

_RULE_NEGATION = re.compile(
    r"^\s*(?:(?:the\s+)?(?:bot|assistant|you)\s+)?(?:must|should|shall|may)?\s*"
    r"(?:never|not|don't|do\s+not|avoid|refrain\s+from|no)\b\s*",
    re.IGNORECASE,
)

# Words that say nothing about what is forbidden: whom, whose, how much.
_FILLER = {
    "a", "an", "the", "any", "some", "of", "for", "to", "from", "about", "with",
    "on", "in", "by", "at", "as", "their", "his", "her", "its", "your", "our",
    "my", "them", "him", "they", "you", "me", "us", "we", "it", "customer",
    "customers", "client", "clients", "user", "users", "visitor", "visitors",
    "caller", "person", "people", "anyone", "someone", "ever", "full",
    "complete", "entire", "whole", "exact", "actual", "real", "is", "are", "be",
}  # fmt: skip


def _stem(word: str) -> str:
    """The word without an ending, cut to five letters: "asked" meets "ask"."""
    for ending in ("ing", "ed", "es", "s", "e"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            if ending != "s" or not word.endswith("ss"):
                word = word[: -len(ending)]
            break
    return word[:5]


def _stemmed(*words: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in words)


# Verbs by which a rule forbids a request, and those by which it forbids
# saying something at all.
_REQUEST_RULE_VERBS = _stemmed("ask", "request", "collect", "demand", "require")
_SAYING_RULE_VERBS = _stemmed("mention", "discuss", "talk", "name", "bring")

# Orders to hand something over to us ("send me", "reply with"), and verbs
# that only do so with the place ("type it here"): "enter your PIN at the
# cash machine" is advice.
_HAND_OVER = _stemmed(
    "tell", "send", "share", "give", "provide", "reply", "respond", "confirm",
    "text", "email", "post", "submit", "supply", "spell", "let", "forward",
    "message",
)  # fmt: skip
_KEY_IN = _stemmed("type", "enter", "write", "input", "put", "paste")
_HERE = {"here", "below", "chat", "me", "us"}
# What the bot's own "I" or "we" asks with ("I'll need", "we have to ask").
_RECEIVE = _stemmed("need", "require", "want", "ask", "request", "like", "get")
_RECEIVE_TO = _stemmed("ask", "request", "have", "get", "see", "know", "check")

_POLITE = {"please", "kindly", "just", "now", "so", "then", "and", "first",
           "simply", "also", "ok", "okay", "quickly", "only"}  # fmt: skip
_MODALS = {"can", "could", "would", "will", "may", "might", "shall"}
_SPEAKERS = {"i", "we", "i'll", "we'll", "i'd", "we'd", "i'm", "we're"}
_AUX = {"will", "would", "need", "to", "have", "must", "do", "am", "going",
        "like", "want", "really", "might", "may", "can", "could", "be"}  # fmt: skip
_NEGATION = {"never", "not", "no", "nobody", "none", "without", "cannot", "nor"}


@dataclass(frozen=True)
class Rule:
    text: str
    verb: str
    # Each alternative is the stems that together name one forbidden thing.
    things: tuple[frozenset[str], ...]

    @property
    def kind(self) -> str:
        if self.verb in _REQUEST_RULE_VERBS:
            return "request"
        if self.verb in _SAYING_RULE_VERBS:
            return "saying"
        return "action"


def broken_rules(text: str, rules: Sequence[str]) -> list[str]:
    """The rules, of `rules`, that some sentence of `text` breaks."""
    parsed = [parse_rule(rule) for rule in rules]
    clauses = [
        _words(clause)
        for sentence in _SENTENCE_END.split(_plain(text))
        for clause in _CLAUSE_BREAK.split(sentence)
    ]
    return [
        rule.text
        for rule in parsed
        if any(_breaks(rule, words) for words in clauses if words)
    ]


def parse_rule(text: str) -> Rule:
    plain = _RULE_NEGATION.sub("", _plain(text).strip().rstrip("."), count=1)
    verb, _, rest = plain.strip().partition(" ")
    things = [_stems(_words(part)) for part in _ALTERNATIVES.split(rest)]
    return Rule(text, _stem(verb), tuple(t for t in things if t))


def _breaks(rule: Rule, words: list[str]) -> bool:
    stems = [_stem(w) for w in words]
    if rule.kind == "saying":
        return any(thing <= set(stems) for thing in rule.things)
    for at, stem in enumerate(stems):
        if rule.kind == "request" and not _asks(words, at):
            continue
        if rule.kind == "action" and stem != rule.verb:
            continue
        if _negated(words[:at]):
            continue
        after = set(stems[at + 1 :])
        if not rule.things or any(thing <= after for thing in rule.things):
            return True
    return False


def _asks(words: list[str], at: int) -> bool:
    """Whether words[at] is where a request to the customer is made."""
    word, after = words[at], words[at + 1 : at + 3]
    if word in ("what", "what's", "which"):
        return "your" in after  # "What is your PIN?"
    stem = _stem(word)
    before = [w for w in words[:at] if w not in _POLITE]
    to_us = stem in _HAND_OVER or (stem in _KEY_IN and bool(_HERE & set(words[at:])))
    if to_us and (not before or "please" in words[:at]):
        return True  # "Please send me", "Reply with", "Type it here"
    if to_us and len(before) >= 2 and before[-2] in _MODALS and before[-1] == "you":
        return True  # "Can you tell me"
    while before and before[0] in _MODALS:
        before = before[1:]  # "Can I ask"
    spoken = bool(before) and before[0] in _SPEAKERS
    if not spoken or any(w not in _AUX for w in before[1:]) or stem not in _RECEIVE:
        return False
    if after[:1] != ["to"]:
        return True  # "I'll need your PIN", "We'd like your passcode"
    # "We need to send you a new PIN" is ours to do, not the customer's.
    return len(after) > 1 and _stem(after[1]) in _RECEIVE_TO


def _negated(before: list[str]) -> bool:
    return any(w in _NEGATION or w.endswith("n't") for w in before)


def _plain(text: str) -> str:
    return text.lower().replace("\u2019", "'")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _stems(words: list[str]) -> frozenset[str]:
    return frozenset(_stem(w) for w in words if w not in _FILLER)
