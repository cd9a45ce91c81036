"""`make run` loads the demo at every start; what admins changed stays."""

import pytest
from django.core.management import call_command

from knowledge.models import Article


@pytest.mark.django_db
def test_running_the_demo_loader_again_keeps_admins_edits() -> None:
    call_command("load_demo", no_users=True, verbosity=0)
    article = Article.objects.order_by("pk").first()
    assert article is not None
    article.body = "Our own wording, edited in admin."
    article.is_active = False
    article.save()
    count = Article.objects.count()

    call_command("load_demo", no_users=True, verbosity=0)

    article.refresh_from_db()
    assert article.body == "Our own wording, edited in admin."
    assert article.is_active is False
    assert Article.objects.count() == count
