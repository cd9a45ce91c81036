"""Celery entry points for routing; each only calls an action.

All are safe to run twice or late: the actions check the escalation's state
under a row lock. With acks_late, a worker killed mid-task leaves the message
on the broker, and the periodic sweep catches anything still left behind.
"""

from celery import shared_task

from . import actions


@shared_task(acks_late=True)
def route_escalation_task(escalation_id: int) -> str:
    return actions.route_escalation(escalation_id)


@shared_task(acks_late=True)
def sweep_escalations_task(retry_after: float = 20.0) -> int:
    return actions.sweep_escalations(retry_after)
