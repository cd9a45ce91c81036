from celery import shared_task

from . import alerts


@shared_task
def check_alerts_task() -> None:
    alerts.check_alerts()
