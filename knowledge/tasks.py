"""Celery entry points for the knowledge base; each only calls an action."""

from celery import shared_task

from . import actions


@shared_task
def reindex_knowledge_task() -> None:
    actions.warm_index()
