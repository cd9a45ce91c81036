import os
from typing import Any, ParamSpec

from celery import Celery, Task
from kombu import serialization

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support_bot.settings")

app = Celery("support_bot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

P = ParamSpec("P")


def enqueue(task: "Task[P, Any]", *args: P.args, **kwargs: P.kwargs) -> None:
    """Queue `task` for a worker, or run it now when tasks run inline.

    Celery's own inline path (`delay` with task_always_eager) still takes a
    producer from the broker pool, only to choose a serializer; with no Redis
    the broker is memory://, and kombu warns about its missing host name on
    each new connection. The arguments make the same round trip here, so an
    inline task gets what a worker would.
    """
    if not app.conf.task_always_eager:
        task.delay(*args, **kwargs)
        return
    serializer = app.conf.task_serializer
    content_type, encoding, data = serialization.dumps((args, kwargs), serializer)
    sent_args, sent_kwargs = serialization.loads(
        data, content_type, encoding, accept=[content_type]
    )
    task.apply(tuple(sent_args), sent_kwargs)
