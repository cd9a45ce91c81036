"""Writes to the knowledge base that come from the rest of the product."""

import logging
import time
from typing import Any

from django.db import transaction

from conversations.actions import ActionError
from conversations.models import Message
from support_bot.celery import enqueue

from . import index
from .models import ARTICLE_TITLE_CHARS, Article

logger = logging.getLogger(__name__)


def article_changed() -> None:
    """Re-index the knowledge base once the current transaction commits.

    Call after any write to articles (admin save or delete, an import); several
    calls in one transaction queue one task each, and all but the first find the
    index already current.
    """
    transaction.on_commit(_reindex)


def _reindex() -> None:
    # Imported here because tasks.py imports this module.
    from .tasks import reindex_knowledge_task

    # This process sees the change at once; the others within a second.
    index.forget_version()
    enqueue(reindex_knowledge_task)


def warm_index() -> None:
    """Build the retrieval index for the current articles in this process.

    The index lives in each process's memory, so this helps only the process
    it runs in. Without Redis, Celery runs tasks inline in the web process that
    served the edit, which is the one answering customers. With a broker it
    runs on a worker, and every web process still rebuilds on its next answer
    (it notices the change from the articles' count and latest edit time).
    """
    started = time.monotonic()
    index.get_index(index.current_version())
    logger.info("Knowledge index warmed in %.2fs", time.monotonic() - started)


def save_agent_answer(user: Any, conversation_id: Any, seq: int, title: str) -> Article:
    """Turn an agent's reply into an article, the customer's question its example.

    The article starts inactive when the title is new, so an admin reviews it
    before the bot answers from it.
    """
    answer = Message.objects.filter(
        conversation_id=conversation_id, seq=seq, role=Message.Role.AGENT
    ).first()
    if answer is None:
        raise ActionError("not_found", "Only an agent's reply can become an article.")
    question = (
        Message.objects.filter(
            conversation_id=conversation_id, seq__lt=seq, role=Message.Role.CUSTOMER
        )
        .order_by("-seq")
        .values_list("text", flat=True)
        .first()
    )
    with transaction.atomic():
        return Article.objects.create(
            title=title[:ARTICLE_TITLE_CHARS],
            body=answer.text,
            example_questions=question or "",
            is_active=False,
        )
