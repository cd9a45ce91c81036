"""What follows a change made outside the conversation actions.

A visitor can be deleted by any path: the erasure (retention.erase_visitor),
the admin's Delete button or bulk delete, a shell. Each leaves their open
widgets talking about rows that are gone, so each closes them the same way.
"""

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from support_bot import live

from .models import Visitor


@receiver(post_delete, sender=Visitor, dispatch_uid="visitor_deleted_closes_widgets")
def close_the_visitors_widgets(sender: Any, instance: Visitor, **kwargs: Any) -> None:
    # After commit: a delete that is rolled back leaves the widgets as they
    # were. The widget forgets its token and starts as a new visitor.
    live.send_after_commit(live.visitor_group(instance.pk), {"type": "visitor.erased"})
