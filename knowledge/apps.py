from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


class KnowledgeConfig(AppConfig):
    name = "knowledge"

    def ready(self) -> None:
        from .models import BotSettings

        # Any write to the bot settings, from admin or a shell, is seen by this
        # process at once; other processes see it within a second.
        post_save.connect(_bot_settings_changed, sender=BotSettings)
        post_delete.connect(_bot_settings_changed, sender=BotSettings)


def _bot_settings_changed(**kwargs: Any) -> None:
    from support_bot.bot.config import forget_cached_config

    forget_cached_config()
    transaction.on_commit(forget_cached_config)
