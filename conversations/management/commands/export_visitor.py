"""Write everything stored about one visitor as JSON, for their access request."""

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from conversations import retention
from conversations.models import Visitor


class Command(BaseCommand):
    help = "Export one visitor's data (conversations, messages, escalations, ...)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("visitor_id")
        parser.add_argument("--out", type=Path, help="File to write; default stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = retention.export_visitor(options["visitor_id"])
        except (Visitor.DoesNotExist, ValidationError):
            raise CommandError("There is no visitor with that id.") from None
        text = json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
        out: Path | None = options["out"]
        if out is None:
            self.stdout.write(text)
            return
        out.write_text(text + "\n", encoding="utf-8")
        self.stderr.write(f"Wrote {out}")
