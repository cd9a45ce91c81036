"""Knowledge articles to and from CSV, JSON and Markdown files.

The formats are described in docs/knowledge-format.md. Reading checks
everything before anything is written, and the import runs in one
transaction: bad input imports nothing, and the error names the file and the
row, item or line to fix.

Markdown files carry their title and questions in plain "Key: value" header
lines rather than YAML front matter: example questions are free text written
by support staff, and YAML silently turns some of them into something else (a
question with a colon fails to parse; "no" becomes false) unless quoted.
"""

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from django.db import transaction
from django.utils.text import slugify

from .actions import article_changed
from .models import Article

Format = Literal["csv", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("csv", "json", "markdown")

MAX_FILE_BYTES = 10 * 1024 * 1024
FIELDS = ("title", "body", "example_questions", "is_active")
REQUIRED_FIELDS = ("title", "body")
TITLE_MAX = Article._meta.get_field("title").max_length or 200

_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


class KnowledgeFormatError(ValueError):
    """Input that cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class ArticleRecord:
    title: str
    body: str
    questions: tuple[str, ...]
    is_active: bool
    # Where the record came from, for error messages: "kb.csv, row 4".
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class ImportSummary:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    dry_run: bool


# --- Reading ----------------------------------------------------------------


def guess_format(name: str) -> Format:
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(".json"):
        return "json"
    if lowered.endswith((".md", ".markdown", ".zip")):
        return "markdown"
    raise KnowledgeFormatError(
        f"{name}: cannot tell the format from the name; choose csv, json or markdown."
    )


def read_path(path: Path, fmt: Format | None = None) -> list[ArticleRecord]:
    """Records from a CSV or JSON file, or a folder (or zip) of Markdown files."""
    if path.is_dir():
        if fmt not in (None, "markdown"):
            raise KnowledgeFormatError(f"{path}: a folder holds Markdown files.")
        files = sorted(path.rglob("*.md"))
        if not files:
            raise KnowledgeFormatError(f"{path}: no .md files in this folder.")
        return read_files([_read_file(p, p.relative_to(path)) for p in files], fmt)
    if not path.is_file():
        raise KnowledgeFormatError(f"{path}: no such file or folder.")
    return read_files([_read_file(path, Path(path.name))], fmt)


def read_files(files: Sequence[SourceFile], fmt: Format | None) -> list[ArticleRecord]:
    """Records from uploaded files: one CSV or JSON file, or Markdown files."""
    if not files:
        raise KnowledgeFormatError("No file was given.")
    for source in files:
        _check_size(source.name, len(source.data))
    fmt = fmt or guess_format(files[0].name)
    if fmt == "markdown":
        records = [parse_markdown(f) for f in _unzipped(files)]
    elif len(files) > 1:
        raise KnowledgeFormatError(f"Give one {fmt.upper()} file, not {len(files)}.")
    elif fmt == "csv":
        records = parse_csv(files[0])
    else:
        records = parse_json(files[0])
    _check_unique_titles(records)
    return records


def parse_csv(source: SourceFile) -> list[ArticleRecord]:
    # newline="" keeps line breaks inside quoted cells, as the csv module needs.
    reader = csv.DictReader(io.StringIO(_text(source), newline=""))
    columns = reader.fieldnames
    if not columns:
        raise KnowledgeFormatError(f"{source.name}: the file is empty.")
    _check_fields(source.name, [c.strip() for c in columns], "column")
    records = []
    # Rows are counted as a spreadsheet shows them: the header is row 1.
    for number, row in enumerate(reader, start=2):
        where = f"{source.name}, row {number}"
        if None in row:
            raise KnowledgeFormatError(f"{where}: more cells than columns.")
        cells = {(k or "").strip(): v or "" for k, v in row.items()}
        records.append(
            _record(
                where,
                cells["title"],
                cells["body"],
                cells.get("example_questions", "").splitlines(),
                _parse_bool(where, cells.get("is_active", "")),
            )
        )
    return records


def parse_json(source: SourceFile) -> list[ArticleRecord]:
    try:
        items = json.loads(_text(source))
    except json.JSONDecodeError as error:
        raise KnowledgeFormatError(
            f"{source.name}: not valid JSON (line {error.lineno}, column "
            f"{error.colno}): {error.msg}."
        ) from error
    if not isinstance(items, list):
        raise KnowledgeFormatError(f"{source.name}: expected a list of articles.")
    return [
        _json_record(f"{source.name}, item {number}", item)
        for number, item in enumerate(items, start=1)
    ]


def parse_markdown(source: SourceFile) -> ArticleRecord:
    """One article: "Title:", optional "Active:" and "Questions:", a blank line,
    then the body."""
    lines = _text(source).splitlines()
    headers: dict[str, str] = {}
    questions: list[str] = []
    number = 0
    for number, line in enumerate(lines, start=1):
        where = f"{source.name}, line {number}"
        if not line.strip():
            break
        if line.lstrip().startswith(("- ", "* ")) and "questions" in headers:
            questions.append(line.strip()[2:])
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or key not in ("title", "active", "questions"):
            raise KnowledgeFormatError(
                f"{where}: expected a header line (Title:, Active: or Questions:) "
                "or the blank line before the body."
            )
        headers[key] = value.strip()
    else:
        # No blank line: the file is all header, no body.
        number = len(lines)
    if "title" not in headers:
        raise KnowledgeFormatError(f"{source.name}: no 'Title:' line at the top.")
    where = source.name
    body = "\n".join(lines[number:]).strip()
    active = _parse_bool(where, headers.get("active", ""))
    return _record(where, headers["title"], body, questions, active)


# --- Writing ----------------------------------------------------------------


@transaction.atomic
def import_articles(
    records: Sequence[ArticleRecord], *, dry_run: bool = False
) -> ImportSummary:
    """Create or update articles matched by title; nothing is written on dry run.

    Precondition: `records` came from `read_files` or `read_path`, which
    checked every field and that no title appears twice.
    """
    existing = _existing_by_title(r.title for r in records)
    created, updated, unchanged = [], [], []
    for record in records:
        article = existing.get(record.title)
        if article is None:
            article = Article(title=record.title)
            created.append(record.title)
        elif _matches(article, record):
            unchanged.append(record.title)
            continue
        else:
            updated.append(record.title)
        if not dry_run:
            article.body = record.body
            article.example_questions = "\n".join(record.questions)
            article.is_active = record.is_active
            article.save()
    if not dry_run and (created or updated):
        article_changed()
    return ImportSummary(created, updated, unchanged, dry_run)


def export_records(articles: Iterable[Article]) -> list[ArticleRecord]:
    return [
        ArticleRecord(a.title, a.body, tuple(a.questions), a.is_active)
        for a in articles
    ]


def export_csv(records: Sequence[ArticleRecord]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                "title": record.title,
                "body": record.body,
                "example_questions": "\n".join(record.questions),
                "is_active": "true" if record.is_active else "false",
            }
        )
    return out.getvalue().encode("utf-8")


def export_json(records: Sequence[ArticleRecord]) -> bytes:
    items = [
        {
            "title": r.title,
            "body": r.body,
            "example_questions": list(r.questions),
            "is_active": r.is_active,
        }
        for r in records
    ]
    return (json.dumps(items, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def export_markdown(records: Sequence[ArticleRecord]) -> list[SourceFile]:
    """One file per article, named after its title."""
    files = []
    used: set[str] = set()
    for record in records:
        stem = slugify(record.title)[:80] or "article"
        name, n = f"{stem}.md", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.md"
        used.add(name)
        files.append(SourceFile(name, _markdown(record).encode("utf-8")))
    return files


def export_markdown_zip(records: Sequence[ArticleRecord]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in export_markdown(records):
            archive.writestr(source.name, source.data)
    return out.getvalue()


# --- Helpers ----------------------------------------------------------------


def _read_file(path: Path, name: Path) -> SourceFile:
    _check_size(str(name), path.stat().st_size)
    return SourceFile(str(name), path.read_bytes())


def _check_size(name: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise KnowledgeFormatError(
            f"{name}: {size / 1024 / 1024:.1f} MB is over the limit of "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB; split it into smaller files."
        )


def _unzipped(files: Sequence[SourceFile]) -> list[SourceFile]:
    """Markdown files, with any zip archive (an exported folder) opened."""
    found: list[SourceFile] = []
    for source in files:
        if not source.name.lower().endswith(".zip"):
            found.append(source)
            continue
        try:
            with zipfile.ZipFile(io.BytesIO(source.data)) as archive:
                members = [
                    m
                    for m in archive.infolist()
                    if m.filename.lower().endswith(".md") and not m.is_dir()
                ]
                # Checked before reading: the sizes in a zip are what it
                # claims to unpack to, so a tiny archive cannot fill memory.
                _check_size(source.name, sum(m.file_size for m in members))
                found.extend(SourceFile(m.filename, archive.read(m)) for m in members)
        except zipfile.BadZipFile as error:
            raise KnowledgeFormatError(f"{source.name}: not a zip file.") from error
    if not found:
        raise KnowledgeFormatError("No Markdown (.md) files were given.")
    return found


def _text(source: SourceFile) -> str:
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs write.
        return source.data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = source.data[: error.start].count(b"\n") + 1
        raise KnowledgeFormatError(
            f"{source.name}, line {line}: not valid UTF-8 text (byte "
            f"{error.start}); save the file as UTF-8."
        ) from error


def _check_fields(where: str, names: Sequence[str], noun: str) -> None:
    missing = [f for f in REQUIRED_FIELDS if f not in names]
    unknown = [n for n in names if n not in FIELDS]
    if missing:
        raise KnowledgeFormatError(
            f"{where}: missing {noun} {', '.join(missing)} (expected "
            f"{', '.join(FIELDS)})."
        )
    if unknown:
        raise KnowledgeFormatError(
            f"{where}: unknown {noun} {', '.join(unknown)} (expected "
            f"{', '.join(FIELDS)})."
        )


def _json_record(where: str, item: Any) -> ArticleRecord:
    if not isinstance(item, dict):
        raise KnowledgeFormatError(f"{where}: expected an object.")
    _check_fields(where, list(item), "field")
    questions = item.get("example_questions", [])
    if isinstance(questions, str):
        questions = questions.splitlines()
    is_active = item.get("is_active", True)
    valid = (
        isinstance(item["title"], str)
        and isinstance(item["body"], str)
        and isinstance(questions, list)
        and all(isinstance(q, str) for q in questions)
        and isinstance(is_active, bool)
    )
    if not valid:
        raise KnowledgeFormatError(
            f"{where}: title and body must be text, example_questions a list of "
            "text, is_active true or false."
        )
    return _record(where, item["title"], item["body"], questions, is_active)


def _record(
    where: str, title: str, body: str, questions: Iterable[str], is_active: bool
) -> ArticleRecord:
    title = " ".join(title.split())
    if not title:
        raise KnowledgeFormatError(f"{where}: the title is empty.")
    if len(title) > TITLE_MAX:
        raise KnowledgeFormatError(
            f"{where}: the title is longer than {TITLE_MAX} characters."
        )
    if not body.strip():
        raise KnowledgeFormatError(f"{where}: the body of '{title}' is empty.")
    cleaned = tuple(q.strip() for q in questions if q.strip())
    return ArticleRecord(title, body.strip(), cleaned, is_active, where)


def _parse_bool(where: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE or not lowered:
        return True
    if lowered in _FALSE:
        return False
    raise KnowledgeFormatError(
        f"{where}: '{value}' is not yes or no (true/false, 1/0 work too)."
    )


def _check_unique_titles(records: Sequence[ArticleRecord]) -> None:
    seen: dict[str, ArticleRecord] = {}
    for record in records:
        first = seen.setdefault(record.title, record)
        if first is not record:
            raise KnowledgeFormatError(
                f"{record.where}: the title '{record.title}' is already used at "
                f"{first.where}; titles identify articles."
            )


def _existing_by_title(titles: Iterable[str]) -> dict[str, Article]:
    found: dict[str, Article] = {}
    for article in Article.objects.select_for_update().filter(title__in=set(titles)):
        if article.title in found:
            raise KnowledgeFormatError(
                f"Two articles titled '{article.title}' exist already (ids "
                f"{found[article.title].pk} and {article.pk}); rename one first."
            )
        found[article.title] = article
    return found


def _matches(article: Article, record: ArticleRecord) -> bool:
    return (
        article.body == record.body
        and tuple(article.questions) == record.questions
        and article.is_active == record.is_active
    )


def _markdown(record: ArticleRecord) -> str:
    lines = [f"Title: {record.title}"]
    if not record.is_active:
        lines.append("Active: no")
    if record.questions:
        lines.append("Questions:")
        lines.extend(f"- {q}" for q in record.questions)
    return "\n".join(lines) + "\n\n" + record.body + "\n"
