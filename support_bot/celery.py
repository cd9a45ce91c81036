import logging
import os
from typing import Any, ParamSpec

from celery import Celery, Task
from kombu import serialization
from kombu.exceptions import OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support_bot.settings")

app = Celery("support_bot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

P = ParamSpec("P")

logger = logging.getLogger(__name__)


def enqueue(task: "Task[P, Any]", *args: P.args, **kwargs: P.kwargs) -> None:
    """Queue `task` for a worker, or run it now when tasks run inline.

    Never raises. Tasks are queued once the change they follow is committed
    (routing an escalation, folding a long conversation's memory), so by then
    the caller's work is stored: a failure here must not reach the customer
    as a failure of that work, nor stop the callbacks after it. Each task's
    work is picked up again without it: beat's sweep routes escalations left
    queued, the next turn over the memory budget folds it, a web process
    rebuilds a stale article index when it reads it.

    Celery's own inline path (`delay` with task_always_eager) still takes a
    producer from the broker pool, only to choose a serializer; with no Redis
    the broker is memory://, and kombu warns about its missing host name on
    each new connection. The arguments make the same round trip here, so an
    inline task gets what a worker would.
    """
    if not app.conf.task_always_eager:
        try:
            task.delay(*args, **kwargs)
        except (OperationalError, OSError) as error:
            logger.warning(
                "Task %s was not queued: the broker is unreachable (%s); "
                "it is picked up again later",
                task.name,
                error,
            )
        return
    serializer = app.conf.task_serializer
    content_type, encoding, data = serialization.dumps((args, kwargs), serializer)
    sent_args, sent_kwargs = serialization.loads(
        data, content_type, encoding, accept=[content_type]
    )
    try:
        task.apply(tuple(sent_args), sent_kwargs)
    except Exception:
        logger.exception("Task %s failed; it is picked up again later", task.name)
