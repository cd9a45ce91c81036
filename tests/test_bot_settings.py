"""The bot's settings come from the environment until an admin saves the one
record, then from the record."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.urls import reverse

from knowledge.models import BotSettings
from support_bot import db
from support_bot.bot import config
from support_bot.bot.config import aget_bot_config, get_bot_config


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    config.forget_cached_config()
    yield
    config.forget_cached_config()


def _form(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "Robin",
        "persona": "You are {name}, the assistant of Kestrel Bank.",
        "greeting": "Hello from Robin.",
        "model": "small-model",
        "temperature": "0.5",
        "max_answer_tokens": "300",
        "memory_token_budget": "900",
        "confidence_threshold": "0.7",
        "review_mode": "supervised",
    }
    return data | changes


@pytest.mark.django_db
def test_config_falls_back_to_the_environment(settings: Any) -> None:
    settings.BOT_NAME = "Env Bot"
    settings.LLM_MODEL = "env-model"
    settings.CONFIDENCE_THRESHOLD = 0.4

    found = get_bot_config()

    assert (found.name, found.model) == ("Env Bot", "env-model")
    assert found.confidence_threshold == 0.4
    assert found.review_mode == "autopilot"


@pytest.mark.django_db
def test_config_follows_the_record_admin_saves(admin_client: Client) -> None:
    changelist = admin_client.get(reverse("admin:knowledge_botsettings_changelist"))
    assert changelist["Location"] == reverse("admin:knowledge_botsettings_add")

    admin_client.post(reverse("admin:knowledge_botsettings_add"), _form())
    found = get_bot_config()
    assert (found.name, found.model, found.review_mode) == (
        "Robin",
        "small-model",
        "supervised",
    )
    assert found.instructions == "You are Robin, the assistant of Kestrel Bank."

    change = reverse("admin:knowledge_botsettings_change", args=[1])
    admin_client.post(change, _form(name="Wren", confidence_threshold="0.9"))
    assert get_bot_config().name == "Wren"
    assert get_bot_config().confidence_threshold == 0.9


@pytest.mark.django_db
def test_admin_offers_no_second_record_and_no_delete(admin_client: Client) -> None:
    first = admin_client.get(reverse("admin:knowledge_botsettings_add"))
    assert b'name="_addanother"' not in first.content
    # Pressed anyway (an old form): the one record is saved and shown.
    saved = admin_client.post(
        reverse("admin:knowledge_botsettings_add"), _form(_addanother="1")
    )

    add = admin_client.get(reverse("admin:knowledge_botsettings_add"))
    delete = admin_client.get(reverse("admin:knowledge_botsettings_delete", args=[1]))

    change = reverse("admin:knowledge_botsettings_change", args=[1])
    landed = admin_client.get(saved["Location"], follow=True)
    assert landed.status_code == 200
    assert landed.redirect_chain[-1][0] == change
    assert add.status_code == 302
    assert add["Location"] == change
    assert b'name="_addanother"' not in admin_client.get(change).content
    assert delete.status_code == 403
    assert BotSettings.objects.count() == 1


@pytest.mark.django_db
def test_persona_with_an_unknown_placeholder_is_refused(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:knowledge_botsettings_add"),
        _form(persona="You are {name} of {bank}."),
    )

    assert response.status_code == 200
    assert "Only {name} may appear in braces" in response.content.decode()
    assert not BotSettings.objects.exists()


@pytest.mark.django_db
def test_another_process_edit_is_seen_within_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config, "CACHE_SECONDS", 1.0)  # conftest turns it off
    BotSettings.objects.create(name="Robin")
    assert get_bot_config().name == "Robin"

    # As another process would: this process's signal does not fire.
    BotSettings.objects.filter(pk=1).update(name="Wren")
    assert get_bot_config().name == "Robin"

    # Once the cache's second is up:
    monkeypatch.setattr(config, "CACHE_SECONDS", 0.0)
    assert get_bot_config().name == "Wren"


async def test_async_code_reads_it_on_the_database_pool(
    transactional_db: None,
) -> None:
    await BotSettings.objects.acreate(name="Robin")
    try:
        assert (await aget_bot_config()).name == "Robin"
    finally:
        # acreate ran on asgiref's shared thread, aget on the pool: close both.
        await sync_to_async(connections.close_all)()
        await asyncio.to_thread(db.close_pool)
