"""What the bot remembers of a conversation.

The prompt carries the newest turns word for word, up to a token budget, and a
running summary of everything older. A Celery task writes the summary once the
unsummarised turns outgrow the budget; until it has run, the oldest turns are
simply left out, so the prompt never exceeds the budget.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from .engine import Role, Turn

if TYPE_CHECKING:
    from conversations.models import Conversation

# The newest turns a reply can ever use; fetching a bounded number keeps the
# query cost of an answer flat however long the conversation grows.
MAX_RECENT_MESSAGES = 60


@dataclass(frozen=True)
class StoredTurn:
    seq: int
    role: Role
    text: str
    tokens: int

    @classmethod
    def from_row(cls, row: tuple[int, str, str, int]) -> "StoredTurn":
        seq, role, text, tokens = row
        return cls(seq, cast(Role, role), text, tokens)


def select_recent(newest_first: Iterable[StoredTurn], budget: int) -> list[Turn]:
    """The newest turns whose tokens fit in `budget`, oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in newest_first:
        if used + turn.tokens > budget:
            break
        kept.append(Turn(turn.role, turn.text))
        used += turn.tokens
    kept.reverse()
    return kept


def unsummarized_tokens_over_budget(conversation: "Conversation") -> bool:
    from .config import get_bot_config

    budget: int = get_bot_config().memory_token_budget
    return conversation.memory_tokens > budget


def split_for_folding(
    oldest_first: list[StoredTurn], budget: int
) -> tuple[list[StoredTurn], list[StoredTurn]]:
    """Split unsummarised turns into (to fold, to keep word for word).

    Keeps the newest turns within half the budget, so a fold is not needed again
    on the very next message.
    """
    keep_budget = budget // 2
    used = 0
    split_at = len(oldest_first)
    for index in range(len(oldest_first) - 1, -1, -1):
        used += oldest_first[index].tokens
        if used > keep_budget:
            break
        split_at = index
    return oldest_first[:split_at], oldest_first[split_at:]
