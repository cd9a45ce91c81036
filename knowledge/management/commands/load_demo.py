"""Load the demo bank's knowledge base and create demo logins.

Safe to run again (`make run` runs it at every start): articles are matched
by title and only the missing ones are added, so what an admin changed in a
demo article (its text, its questions, switching it off) stays as they left
it; existing users keep their passwords.
"""

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from escalation.models import AGENTS_GROUP, AgentProfile, CannedReply
from knowledge.guidelines import GuidelineEdit, publish, save_draft
from knowledge.models import Article, Guideline

KB_FILE = Path(__file__).resolve().parents[2] / "demo" / "bank_kb.json"
DEMO_LOGINS = [
    # (username, password, is_superuser, display name)
    ("admin", "admin-demo-2026", True, "Admin"),
    ("dana", "dana-demo-2026", False, "Dana"),
]


DEMO_CANNED_REPLIES = [
    ("Greeting", "Hi, I'm here to help. Give me a moment to read through this."),
    (
        "Card frozen",
        "I've checked your account: the card is frozen now, so nobody can use it. "
        "You can order a replacement in the app under Cards.",
    ),
    ("Closing", "Is there anything else I can help you with today?"),
]


class Command(BaseCommand):
    help = "Load the Kestrel Bank demo knowledge base and demo logins."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-users", action="store_true", help="Load articles only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        created, kept = load_articles(KB_FILE)
        self.stdout.write(
            f"Knowledge base: {created} articles added, {kept} already there "
            "left as they are."
        )
        load_bot_setup()
        if options["no_users"]:
            return
        if not settings.DEBUG:
            raise CommandError(
                "Demo logins have public passwords; they are only created with "
                "DEBUG on. Use createsuperuser in production, or --no-users."
            )
        for title, text in DEMO_CANNED_REPLIES:
            CannedReply.objects.get_or_create(title=title, defaults={"text": text})
        site = f"http://127.0.0.1:{settings.PORT}"
        self.stdout.write(
            f"Demo logins (admin: {site}/admin/, agent console: {site}/agent/):"
        )
        for username, password, is_superuser, name in DEMO_LOGINS:
            user_created = ensure_user(username, password, is_superuser, name)
            note = "" if user_created else " (existing user, password unchanged)"
            self.stdout.write(f"  {username} / {password}{note}")


DEMO_GUIDELINES = [
    ("tone", "Use plain words and short sentences. Never blame the customer."),
    (
        "never_do",
        "Never ask the customer for their full card number, PIN or passcode.",
    ),
]


@transaction.atomic
def load_bot_setup() -> None:
    """A few published guidelines, once; an admin's later edits are kept.

    No bot settings record is made: until an admin saves one, the bot follows
    the environment (LLM_MODEL and the rest), which a record would freeze.
    """
    if Guideline.objects.exists():
        return
    for order, (kind, text) in enumerate(DEMO_GUIDELINES, start=1):
        publish(save_draft(Guideline(), GuidelineEdit(text, kind, order, True), None))


@transaction.atomic
def load_articles(path: Path) -> tuple[int, int]:
    """Add the demo articles that are missing; (added, already there)."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    created = kept = 0
    for entry in entries:
        _, was_created = Article.objects.get_or_create(
            title=entry["title"],
            defaults={
                "body": entry["body"],
                "example_questions": "\n".join(entry["example_questions"]),
                "is_active": True,
            },
        )
        created += was_created
        kept += not was_created
    return created, kept


def ensure_user(username: str, password: str, is_superuser: bool, name: str) -> bool:
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"first_name": name, "is_staff": True, "is_superuser": is_superuser},
    )
    if created:
        user.set_password(password)
        user.save()
    if not is_superuser:
        group, _ = Group.objects.get_or_create(name=AGENTS_GROUP)
        user.groups.add(group)
        AgentProfile.objects.get_or_create(user=user)
    return created
