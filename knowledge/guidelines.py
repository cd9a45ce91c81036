"""Guidelines: the rules admins give the bot, edited as drafts and published.

Every write goes through this module: saving a draft, publishing it, restoring
an old version. The bot reads only `published_guidelines()`, so a draft being
written or previewed never reaches a customer.
"""

import difflib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from django.db import transaction
from django.db.models import Count, Max

from support_bot.bot.config import get_bot_config
from support_bot.bot.engine import BotRequest
from support_bot.bot.prompt import build_messages

from .models import Guideline, GuidelineVersion

logger = logging.getLogger(__name__)

# How stale another process's edits may be in this process's copy.
CACHE_SECONDS = 1.0

# The kinds the model is told as rules. Always-human topics and never-do rules
# are checked against each question and answer instead.
PROMPT_KINDS = (Guideline.Kind.TONE, Guideline.Kind.POLICY)


@dataclass(frozen=True)
class PublishedGuideline:
    id: int
    kind: str
    text: str
    order: int


@dataclass(frozen=True)
class GuidelineEdit:
    """What an admin typed: the whole guideline, not a change to it."""

    text: str
    kind: str
    order: int
    active: bool


@dataclass(frozen=True)
class DiffLine:
    # "same", "added" or "removed": the template picks a style by it.
    change: Literal["same", "added", "removed"]
    text: str


@dataclass(frozen=True)
class _Cached:
    checked_at: float
    stamp: tuple[int, Any]
    guidelines: list[PublishedGuideline]


_cached: _Cached | None = None
_cache_lock = threading.Lock()


def published_guidelines() -> list[PublishedGuideline]:
    """The published, active guidelines, in order. Sync: runs one cheap query.

    Cached per process. At most once a second the cache checks the guidelines'
    count and latest change, and reloads only when they moved, so an answer
    usually costs no query at all. Safe to call from the database thread pool.
    """
    global _cached
    cached = _cached
    now = time.monotonic()
    if cached is not None and now - cached.checked_at < CACHE_SECONDS:
        return cached.guidelines
    with _cache_lock:
        stamp = _stamp()
        if _cached is not None and _cached.stamp == stamp:
            _cached = _Cached(now, stamp, _cached.guidelines)
        else:
            _cached = _Cached(now, stamp, _load())
        return _cached.guidelines


def forget_cached_guidelines() -> None:
    """Make this process's next `published_guidelines()` read the database."""
    global _cached
    _cached = None


def _stamp() -> tuple[int, Any]:
    agg = Guideline.objects.aggregate(count=Count("id"), latest=Max("updated_at"))
    return (agg["count"], agg["latest"])


def _load() -> list[PublishedGuideline]:
    rows = (
        Guideline.objects.filter(active=True, published__isnull=False)
        .order_by("order", "id")
        .values_list("id", "kind", "published__text", "order")
    )
    return [PublishedGuideline(*row) for row in rows]


def system_prompt(draft: GuidelineVersion | None = None) -> str:
    """The bot's system prompt as it reads now, or once `draft` is published.

    Articles are left out: each answer adds those retrieved for its question.
    """
    config = get_bot_config()
    rules = [g for g in _load() if draft is None or g.id != draft.guideline_id]
    if draft is not None and draft.active:
        rules.append(
            PublishedGuideline(draft.guideline_id, draft.kind, draft.text, draft.order)
        )
    rules.sort(key=lambda g: (g.order, g.id))
    request = BotRequest(
        question="",
        bot_name=config.name,
        guidelines=tuple(g.text for g in rules if g.kind in PROMPT_KINDS),
    )
    return build_messages(request, config.instructions)[0]["content"]


def save_draft(
    guideline: Guideline, edit: GuidelineEdit, author: Any
) -> GuidelineVersion:
    """Store `edit` as a new draft; a new `guideline` is saved first.

    The published version keeps working until the draft is published.
    """
    with transaction.atomic():
        if guideline.pk is None:
            guideline.kind, guideline.order = edit.kind, edit.order
            # Not in use until a version is published.
            guideline.active = False
            guideline.save()
        version = GuidelineVersion.objects.create(
            guideline=guideline,
            text=edit.text,
            kind=edit.kind,
            order=edit.order,
            active=edit.active,
            status=GuidelineVersion.Status.DRAFT,
            author=_user_or_none(author),
        )
    logger.info(
        "Guideline draft saved",
        extra={"guideline_id": guideline.pk, "version_id": version.pk},
    )
    return version


def publish(version: GuidelineVersion) -> GuidelineVersion:
    """Make `version` the one the bot uses."""
    with transaction.atomic():
        guideline = Guideline.objects.select_for_update().get(pk=version.guideline_id)
        version.status = GuidelineVersion.Status.PUBLISHED
        version.save(update_fields=["status"])
        guideline.published = version
        guideline.kind, guideline.order = version.kind, version.order
        guideline.active = version.active
        guideline.save()
        _forget_now_and_on_commit()
    logger.info(
        "Guideline published",
        extra={"guideline_id": guideline.pk, "version_id": version.pk},
    )
    return version


def restore(version: GuidelineVersion, author: Any) -> GuidelineVersion:
    """Publish a copy of an older `version`, keeping the history linear."""
    with transaction.atomic():
        copy = GuidelineVersion.objects.create(
            guideline_id=version.guideline_id,
            text=version.text,
            kind=version.kind,
            order=version.order,
            active=version.active,
            author=_user_or_none(author),
            restored_from=version,
        )
        return publish(copy)


def pending_draft(guideline: Guideline) -> GuidelineVersion | None:
    """The newest draft saved after the published version, if any."""
    drafts = guideline.versions.filter(status=GuidelineVersion.Status.DRAFT)
    if guideline.published_id is not None:
        drafts = drafts.filter(id__gt=guideline.published_id)
    return drafts.order_by("-id").first()


def diff_lines(old: str, new: str) -> list[DiffLine]:
    """A line diff of two texts; the template escapes it like any other text."""
    lines = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        marker, text = line[:2], line[2:]
        if marker == "+ ":
            lines.append(DiffLine("added", text))
        elif marker == "- ":
            lines.append(DiffLine("removed", text))
        elif marker == "  ":
            lines.append(DiffLine("same", text))
        # "? " lines are ndiff's intraline hints, meant for a terminal.
    return lines


def snapshot_lines(version: GuidelineVersion | None) -> str:
    """A version as the diffs compare it: settings first, then the text."""
    if version is None:
        return ""
    settings_line = (
        f"[{Guideline.Kind(version.kind).label}, order {version.order}, "
        f"{'active' if version.active else 'inactive'}]"
    )
    return f"{settings_line}\n{version.text}"


def _forget_now_and_on_commit() -> None:
    # Now, so this process's next read is fresh; on commit again, in case a
    # read in between cached the rows from before the commit.
    forget_cached_guidelines()
    transaction.on_commit(forget_cached_guidelines)


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None
