"""Delete one visitor and everything of theirs, for their erasure request."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import retention
from conversations.models import Message, Visitor


class Command(BaseCommand):
    help = "Erase one visitor: conversations, messages, escalations, notes, feedback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("visitor_id")
        parser.add_argument(
            "--yes", action="store_true", help="Erase; without it, only say what."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        visitor_id = options["visitor_id"]
        try:
            visitor = Visitor.objects.get(pk=visitor_id)
        except (Visitor.DoesNotExist, ValidationError):
            raise CommandError("There is no visitor with that id.") from None

        if not options["yes"]:
            conversations = visitor.conversations.count()
            messages = Message.objects.filter(conversation__visitor=visitor).count()
            raise CommandError(
                f"This would erase {visitor} with {conversations} conversations "
                f"and {messages} messages, for good. Run again with --yes."
            )
        erased = retention.erase_visitor(visitor.pk)
        self.stdout.write(
            f"Erased {visitor}: {erased.conversations} conversations, "
            f"{erased.messages} messages."
        )
