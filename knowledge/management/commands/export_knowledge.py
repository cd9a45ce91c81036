"""Export every knowledge article to CSV, JSON or a folder of Markdown files.

The output reads back with import_knowledge; the formats are described in
docs/knowledge-format.md.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from knowledge.importexport import (
    FORMATS,
    export_csv,
    export_json,
    export_markdown,
    export_records,
)
from knowledge.models import Article


class Command(BaseCommand):
    help = "Export knowledge articles as CSV, JSON or a folder of Markdown files."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "path", type=Path, help="The file to write, or the folder for Markdown."
        )
        parser.add_argument("--format", choices=FORMATS, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        records = export_records(Article.objects.order_by("title", "id"))
        if options["format"] == "markdown":
            if path.is_file() or (path.is_dir() and any(path.iterdir())):
                # Old files of renamed articles would be imported again later.
                raise CommandError(f"{path} is not an empty folder.")
            path.mkdir(parents=True, exist_ok=True)
            for source in export_markdown(records):
                (path / source.name).write_bytes(source.data)
        else:
            write = export_csv if options["format"] == "csv" else export_json
            path.write_bytes(write(records))
        self.stdout.write(f"{len(records)} articles written to {path}.")
