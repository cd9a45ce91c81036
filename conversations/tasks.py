from celery import shared_task
from django.utils import timezone

from . import actions, recovery, retention


@shared_task(acks_late=True)
def summarize_conversation_task(conversation_id: str) -> None:
    actions.summarize_old_turns(conversation_id)


@shared_task(acks_late=True)
def apply_retention_task() -> None:
    retention.apply_retention(timezone.now())


@shared_task(acks_late=True)
def answer_stranded_task() -> int:
    return recovery.answer_stranded()
