"""Guidelines are drafted, previewed and published in admin; the bot sees only
what is published."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from knowledge import guidelines
from knowledge.guidelines import PublishedGuideline, published_guidelines
from knowledge.models import Guideline

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    guidelines.forget_cached_guidelines()
    yield
    guidelines.forget_cached_guidelines()


def _save(client: Client, text: str, guideline: Guideline | None = None) -> Any:
    data = {"text": text, "kind": "policy", "order": "1", "active": "on"}
    if guideline is None:
        return client.post(reverse("admin:knowledge_guideline_add"), data)
    url = reverse("admin:knowledge_guideline_change", args=[guideline.pk])
    return client.post(url, data)


def _publish_draft(client: Client, guideline: Guideline) -> Any:
    draft = guidelines.pending_draft(guideline)
    assert draft is not None
    url = reverse("admin:knowledge_guideline_publish", args=[guideline.pk, draft.pk])
    return client.post(url)


def test_draft_is_not_used_by_the_bot_until_published(admin_client: Client) -> None:
    response = _save(admin_client, "Never promise a refund.")
    guideline = Guideline.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/{guideline.pk}/preview/")
    assert published_guidelines() == []

    _publish_draft(admin_client, guideline)
    assert [g.text for g in published_guidelines()] == ["Never promise a refund."]

    _save(admin_client, "Never promise a refund or a discount.", guideline)
    assert [g.text for g in published_guidelines()] == ["Never promise a refund."]
    listing = admin_client.get(reverse("admin:knowledge_guideline_changelist"))
    assert "Draft waiting" in listing.content.decode()

    _publish_draft(admin_client, guideline)
    assert published_guidelines() == [
        PublishedGuideline(
            guideline.pk, "policy", "Never promise a refund or a discount.", 1
        )
    ]


def test_preview_shows_the_diff_and_the_prompt_the_draft_makes(
    admin_client: Client,
) -> None:
    _save(admin_client, "Answer in short sentences.")
    guideline = Guideline.objects.get()
    _publish_draft(admin_client, guideline)
    _save(admin_client, "Answer in one short paragraph.", guideline)

    url = reverse("admin:knowledge_guideline_preview", args=[guideline.pk])
    page = admin_client.get(url).content.decode()

    assert "- Answer in short sentences." in page
    assert "+ Answer in one short paragraph." in page
    assert "Guidelines from the support team:\n- Answer in one short paragraph." in page


def test_publishing_needs_a_post(admin_client: Client) -> None:
    _save(admin_client, "Be friendly.")
    guideline = Guideline.objects.get()
    draft = guidelines.pending_draft(guideline)
    assert draft is not None
    url = reverse("admin:knowledge_guideline_publish", args=[guideline.pk, draft.pk])

    assert admin_client.get(url).status_code == 405
    assert published_guidelines() == []


def test_history_lists_who_changed_what_with_a_diff(
    admin_client: Client, admin_user: User
) -> None:
    _save(admin_client, "Be friendly.")
    guideline = Guideline.objects.get()
    _publish_draft(admin_client, guideline)
    _save(admin_client, "Be friendly <b>and</b> brief.", guideline)

    url = reverse("admin:knowledge_guideline_history", args=[guideline.pk])
    page = admin_client.get(url).content.decode()

    assert page.count(admin_user.username) >= 2
    assert "(in use)" in page
    assert "- Be friendly." in page
    # Guideline text is shown as text, never as markup.
    assert "+ Be friendly &lt;b&gt;and&lt;/b&gt; brief." in page


def test_restore_publishes_an_old_version_as_a_new_one(admin_client: Client) -> None:
    _save(admin_client, "Offer the app first.")
    guideline = Guideline.objects.get()
    _publish_draft(admin_client, guideline)
    first = guideline.versions.get()
    _save(admin_client, "Offer a phone call first.", guideline)
    _publish_draft(admin_client, guideline)

    url = reverse("admin:knowledge_guideline_restore", args=[guideline.pk, first.pk])
    admin_client.post(url)

    guideline.refresh_from_db()
    assert [g.text for g in published_guidelines()] == ["Offer the app first."]
    assert guideline.versions.count() == 3
    assert guideline.published is not None
    assert guideline.published.restored_from == first


def test_inactive_guidelines_are_not_used(admin_client: Client) -> None:
    data = {"text": "Mention the app.", "kind": "tone", "order": "0"}
    admin_client.post(reverse("admin:knowledge_guideline_add"), data)
    _publish_draft(admin_client, Guideline.objects.get())

    assert published_guidelines() == []


def test_another_process_edit_is_seen_within_a_second(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(admin_client, "Be brief.")
    guideline = Guideline.objects.get()
    _publish_draft(admin_client, guideline)
    assert len(published_guidelines()) == 1

    # As another process's publish would: this process's cache is not told.
    Guideline.objects.filter(pk=guideline.pk).update(
        active=False, updated_at=timezone.now()
    )
    assert len(published_guidelines()) == 1

    # Once the cache's second is up:
    monkeypatch.setattr(guidelines, "CACHE_SECONDS", 0.0)
    assert published_guidelines() == []
