from celery import shared_task

from . import actions


@shared_task(acks_late=True)
def summarize_conversation_task(conversation_id: str) -> None:
    actions.summarize_old_turns(conversation_id)
