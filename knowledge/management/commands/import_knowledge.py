"""Import knowledge articles from CSV, JSON or a folder of Markdown files.

Articles are matched by title: a known title is updated, a new one created.
The whole file is checked first and imported in one transaction, so bad input
imports nothing. The formats: docs/knowledge-format.md.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from knowledge.importexport import (
    FORMATS,
    KnowledgeFormatError,
    import_articles,
    read_path,
)


class Command(BaseCommand):
    help = "Import knowledge articles (CSV, JSON, or a folder of Markdown files)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path, help="A file, or a Markdown folder.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="Default: from the file's extension; a folder is Markdown.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would be created and updated; change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            records = read_path(options["path"], options["format"])
            summary = import_articles(records, dry_run=options["dry_run"])
        except KnowledgeFormatError as error:
            raise CommandError(f"Nothing imported. {error}") from error
        verb = "would be" if summary.dry_run else "were"
        self.stdout.write(
            f"{len(summary.created)} articles {verb} created, "
            f"{len(summary.updated)} {verb} updated, "
            f"{len(summary.unchanged)} unchanged."
        )
        for title in summary.created:
            self.stdout.write(f"  new: {title}")
        for title in summary.updated:
            self.stdout.write(f"  updated: {title}")
