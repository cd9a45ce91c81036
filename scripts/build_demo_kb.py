"""Build the demo knowledge base and the held-out routing set for Kestrel Bank.

Kestrel Bank is a fictional bank; its help-centre articles in
``knowledge/demo/articles.json`` were written by this project. This script
attaches real customer phrasings to each article, taken from the BANKING77
training split: Casanueva et al., "Efficient Intent Detection with Dual
Sentence Encoders" (2020), licensed CC BY 4.0.

Why the split exists: the queries of each intent are divided 75 % / 25 %.
The 75 % become ``example_questions`` in ``knowledge/demo/bank_kb.json``;
they teach retrieval how customers actually phrase each topic. The other
25 % are written to ``eval/banking77_heldout.csv`` and never shown to the
bot, so routing accuracy measured on them is honest rather than a test of
memorised examples.

The split is deterministic and independent of Python's randomised ``hash()``:
each query is normalised (Unicode NFKC, case-folded, whitespace collapsed),
duplicates are dropped, the queries of an intent are ordered by the SHA-1 of
their normalised text, and the first 75 % (rounded) of that order are the
examples. Re-running on the same data always gives the same files.

Usage (from anywhere)::

    python3 scripts/build_demo_kb.py [TRAIN_CSV]

``TRAIN_CSV`` defaults to ``../shared/data/banking77/train.csv`` relative to
the repository root.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import TypedDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO_ROOT / ".." / "shared" / "data" / "banking77" / "train.csv"
ARTICLES_PATH = REPO_ROOT / "knowledge" / "demo" / "articles.json"
KB_PATH = REPO_ROOT / "knowledge" / "demo" / "bank_kb.json"
HELDOUT_PATH = REPO_ROOT / "eval" / "banking77_heldout.csv"

EXAMPLE_SHARE = 0.75


class Article(TypedDict):
    intent: str
    title: str
    body: str


class KbEntry(Article):
    example_questions: list[str]


def clean(text: str) -> str:
    """Tidy a query for output: NFKC and single spaces, original casing kept."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def normalise(text: str) -> str:
    """Key used for de-duplication and hashing."""
    return clean(text).casefold()


def stable_key(text: str) -> str:
    """SHA-1 of the normalised text: stable across runs and machines."""
    return hashlib.sha1(
        normalise(text).encode("utf-8"), usedforsecurity=False
    ).hexdigest()


def load_articles(path: Path) -> list[Article]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list")
    articles: list[Article] = []
    for item in raw:
        article = Article(
            intent=str(item["intent"]),
            title=str(item["title"]),
            body=str(item["body"]),
        )
        articles.append(article)
    # load_demo matches articles by title, so titles must be unique too.
    for field, values in (
        ("intent", [a["intent"] for a in articles]),
        ("title", [a["title"] for a in articles]),
    ):
        if len(set(values)) != len(values):
            raise ValueError(f"{path}: duplicate {field}s")
    return articles


def load_queries(path: Path) -> dict[str, list[str]]:
    """Return intent -> unique queries (first spelling kept, file order)."""
    seen: dict[str, set[str]] = defaultdict(set)
    by_intent: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text, intent = clean(row["text"]), row["category"].strip()
            key = normalise(text)
            if not key or key in seen[intent]:
                continue
            seen[intent].add(key)
            by_intent[intent].append(text)
    # A query labelled with two different intents would leak between the
    # example and held-out sides and has no single right answer: drop it.
    owners: dict[str, set[str]] = defaultdict(set)
    for intent, keys in seen.items():
        for key in keys:
            owners[key].add(intent)
    ambiguous = {key for key, found in owners.items() if len(found) > 1}
    if ambiguous:
        print(
            f"dropping {len(ambiguous)} queries labelled with several intents",
            file=sys.stderr,
        )
    return {
        intent: [t for t in texts if normalise(t) not in ambiguous]
        for intent, texts in by_intent.items()
    }


def split(queries: list[str]) -> tuple[list[str], list[str]]:
    """Split into (examples, held_out), both kept in their original order."""
    ranked = sorted(queries, key=stable_key)
    n_examples = round(len(ranked) * EXAMPLE_SHARE)
    chosen = set(ranked[:n_examples])
    examples = [q for q in queries if q in chosen]
    held_out = [q for q in queries if q not in chosen]
    return examples, held_out


def build(train_path: Path) -> tuple[list[KbEntry], list[tuple[str, str]]]:
    articles = load_articles(ARTICLES_PATH)
    queries = load_queries(train_path)
    mismatched = sorted({a["intent"] for a in articles} ^ set(queries))
    if mismatched:
        raise ValueError(f"intents in only one of articles/data: {mismatched}")
    kb: list[KbEntry] = []
    held_rows: list[tuple[str, str]] = []
    for article in articles:
        examples, held_out = split(queries[article["intent"]])
        kb.append(KbEntry(**article, example_questions=examples))
        held_rows.extend((text, article["intent"]) for text in held_out)
    return kb, held_rows


def write_outputs(kb: list[KbEntry], held_rows: list[tuple[str, str]]) -> None:
    KB_PATH.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(kb, ensure_ascii=False, indent=2) + "\n"
    KB_PATH.write_text(text, encoding="utf-8")
    HELDOUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    with HELDOUT_PATH.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["text", "intent"])
        writer.writerows(held_rows)


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.splitlines()[0] if __doc__ else None
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument(
        "train_csv",
        nargs="?",
        type=Path,
        default=DEFAULT_TRAIN,
        help="BANKING77 train.csv (columns text,category); default: %(default)s",
    )
    args = parser.parse_args(argv)
    train_path: Path = args.train_csv.resolve()
    kb, held_rows = build(train_path)
    write_outputs(kb, held_rows)
    n_examples = sum(len(entry["example_questions"]) for entry in kb)
    print(
        f"{len(kb)} articles, {n_examples} example questions"
        f" -> {KB_PATH.relative_to(REPO_ROOT)}; {len(held_rows)} held-out queries"
        f" -> {HELDOUT_PATH.relative_to(REPO_ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
