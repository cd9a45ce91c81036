"""Saving an article in admin rebuilds the retrieval index after the commit, so
the next customer in this process does not wait for it."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from knowledge import index
from knowledge.models import Article

pytestmark = pytest.mark.django_db


def _index_is_current() -> bool:
    built = index._built
    return built is not None and built.version == index.current_version()


def test_saving_an_article_rebuilds_the_index(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        admin_client.post(
            reverse("admin:knowledge_article_add"),
            {
                "title": "Changing your PIN",
                "body": "Change it at any cash machine.",
                "example_questions": "how do I change my PIN",
                "is_active": "on",
            },
        )

    assert len(callbacks) == 1
    assert _index_is_current()
    _, docs = index.get_index(index.current_version())
    assert [d.title for d in docs.values()] == ["Changing your PIN"]


def test_deleting_an_article_rebuilds_the_index(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    article = Article.objects.create(title="Old", body="Gone soon.")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        admin_client.post(
            reverse("admin:knowledge_article_delete", args=[article.pk]),
            {"post": "yes"},
        )

    assert len(callbacks) == 1
    assert _index_is_current()
