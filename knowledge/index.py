"""The process-wide retrieval index over active knowledge articles.

Built on first use and rebuilt when the articles change. Whether they changed
(their count and latest edit) is read at most once every `CACHE_SECONDS` per
process, as the bot settings and guidelines are: an edit reaches answers
within a second, and most answers cost no query for it.
"""

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Max

from support_bot.bot.retrieval import ArticleDoc, ArticleIndex

from .models import Article

Version = tuple[int, str]


@dataclass(frozen=True)
class _Built:
    version: Version
    index: ArticleIndex
    docs: dict[int, ArticleDoc]


CACHE_SECONDS = 1.0
# Trained classifiers, shared by the processes of one machine (or one volume).
CLASSIFIER_CACHE = Path(settings.VAR_DIR) / "classifier-cache"

_built: _Built | None = None
_lock = threading.Lock()
# (when it was read, the version read)
_checked: tuple[float, Version] | None = None


def current_version() -> Version:
    """The articles' version, read again when the last reading is stale."""
    global _checked
    checked = _checked
    now = time.monotonic()
    if checked is not None and now - checked[0] < CACHE_SECONDS:
        return checked[1]
    version = _read_version()
    _checked = (now, version)
    return version


def forget_version() -> None:
    """Make this process's next `current_version()` read the database."""
    global _checked
    _checked = None


def _read_version() -> Version:
    agg: dict[str, Any] = Article.objects.filter(is_active=True).aggregate(
        count=Count("id"), latest=Max("updated_at")
    )
    latest = agg["latest"].isoformat() if agg["latest"] else ""
    return (agg["count"], latest)


def _load_docs() -> list[ArticleDoc]:
    return [
        ArticleDoc(a.id, a.title, a.body, tuple(a.questions))
        for a in Article.objects.filter(is_active=True).order_by("id")
    ]


def get_index(version: Version) -> tuple[ArticleIndex, dict[int, ArticleDoc]]:
    """The index for `version`, building it (sync, CPU and DB) when stale."""
    global _built
    built = _built
    if built is not None and built.version == version:
        return built.index, built.docs
    with _lock:
        if _built is not None and _built.version == version:
            return _built.index, _built.docs
        docs = _load_docs()
        built_index = ArticleIndex.build(docs, classifier_cache=CLASSIFIER_CACHE)
        _built = _Built(version, built_index, {d.id: d for d in docs})
        return _built.index, _built.docs
