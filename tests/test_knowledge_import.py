"""Articles go out and come back unchanged in every format; bad input imports
nothing and says where the problem is."""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from knowledge.importexport import MAX_FILE_BYTES, export_records
from knowledge.models import Article

pytestmark = pytest.mark.django_db

ARTICLES = [
    # Free text that trips naive formats: commas, quotes, colons, "no", lines.
    {
        "title": 'Fees: what "free" means',
        "body": "Card payments are free.\n\nCash withdrawals, above £200, cost 2%.",
        "example_questions": "is it free?\nno fees: really\nno",
        "is_active": True,
    },
    {
        "title": "Changing your PIN",
        "body": "Change it at any cash machine.",
        "example_questions": "",
        "is_active": False,
    },
]


def _records() -> list[Any]:
    return export_records(Article.objects.order_by("title"))


@pytest.fixture
def articles() -> list[Article]:
    return [Article.objects.create(**fields) for fields in ARTICLES]


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("csv", "kb.csv"), ("json", "kb.json"), ("markdown", "kb")],
)
def test_export_then_import_gives_back_the_same_articles(
    articles: list[Article], tmp_path: Path, fmt: str, name: str
) -> None:
    before = _records()
    call_command("export_knowledge", tmp_path / name, format=fmt)
    Article.objects.all().delete()

    out = io.StringIO()
    call_command("import_knowledge", tmp_path / name, stdout=out)

    assert "2 articles were created" in out.getvalue()
    assert _records() == before


def test_importing_again_changes_nothing_and_dry_run_writes_nothing(
    articles: list[Article], tmp_path: Path
) -> None:
    call_command("export_knowledge", tmp_path / "kb.json", format="json")
    items = json.loads((tmp_path / "kb.json").read_text())
    items[0]["body"] = "Card payments cost nothing."
    items.append({"title": "A new article", "body": "New."})
    (tmp_path / "kb.json").write_text(json.dumps(items))

    out = io.StringIO()
    call_command("import_knowledge", tmp_path / "kb.json", dry_run=True, stdout=out)

    assert out.getvalue().startswith(
        "1 articles would be created, 1 would be updated, 1 unchanged."
    )
    assert Article.objects.count() == 2
    assert Article.objects.filter(body="Card payments cost nothing.").count() == 0


BAD_INPUTS = [
    ("kb.csv", b"title,example_questions\nA,q\n", "kb.csv: missing column body"),
    ("kb.csv", b"title,body,summary\nA,b,c\n", "kb.csv: unknown column summary"),
    ("kb.csv", b"title,body\nNew,ok\n  ,b\n", "kb.csv, row 3: the title is empty"),
    ("kb.csv", b"title,body\nNew,ok\nX,\xff\n", "kb.csv, line 3: not valid UTF-8"),
    ("kb.csv", b"title,body\nNew,a\nNew,b\n", "kb.csv, row 3: the title 'New'"),
    ("kb.json", b'[{"title": "New", "body": "ok"}, {"body": "b"}]', "item 2: missing"),
    ("kb.json", b'[{"title": "New", "body": "ok"}', "kb.json: not valid JSON"),
    ("kb.md", b"Body first.\n", "kb.md, line 1: expected a header line"),
]


@pytest.mark.parametrize(("name", "data", "error"), BAD_INPUTS)
def test_bad_input_imports_nothing_and_says_where(
    articles: list[Article], tmp_path: Path, name: str, data: bytes, error: str
) -> None:
    (tmp_path / name).write_bytes(data)
    before = _records()

    with pytest.raises(CommandError, match="Nothing imported") as raised:
        call_command("import_knowledge", tmp_path / name)

    assert error in str(raised.value)
    assert _records() == before


def test_a_file_over_10_mb_is_refused(articles: list[Article], tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_bytes(b"title,body\n" + b"x" * MAX_FILE_BYTES)

    with pytest.raises(CommandError, match=r"kb\.csv: 10\.0 MB is over the limit"):
        call_command("import_knowledge", path)


def test_admin_exports_and_checks_before_importing(
    articles: list[Article], admin_client: Client
) -> None:
    changelist = reverse("admin:knowledge_article_changelist")
    exported = admin_client.post(
        changelist,
        {"action": "export_as_markdown", "_selected_action": [a.pk for a in articles]},
    )
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert len(archive.namelist()) == 2
    before = _records()
    Article.objects.filter(title="Changing your PIN").delete()

    def upload(button: str) -> Any:
        archive = io.BytesIO(exported.content)
        archive.name = "articles.zip"
        return admin_client.post(
            reverse("admin:knowledge_article_import"),
            {"uploads": archive, button: "1"},
        )

    checked = upload("_check")
    assert "1 to create, 0 to update, 1 unchanged" in checked.content.decode()
    assert Article.objects.count() == 1

    imported = upload("_import")
    assert imported["Location"] == changelist
    assert _records() == before


def test_admin_import_of_a_bad_file_shows_the_error(
    articles: list[Article], admin_client: Client
) -> None:
    upload = io.BytesIO(b"title,body\nNew,ok\n,empty title\n")
    upload.name = "kb.csv"

    response = admin_client.post(
        reverse("admin:knowledge_article_import"), {"uploads": upload, "_import": "1"}
    )

    page = response.content.decode()
    assert "Nothing was imported. kb.csv, row 3: the title is empty." in page
    assert Article.objects.count() == 2
