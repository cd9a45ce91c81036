"""Fit the confidence constants in `support_bot.bot.retrieval`.

Run from the project root:

    .venv/bin/python -m scripts.fit_confidence [--data /work/shared/data]

For every question of two development sets, the best-ranked article's signals
(score, lead of its rank over the runner-up, softmax and word probabilities)
are paired with whether that article is the right answer, and a logistic
regression is fitted to them by Newton's method. The sets use no question the
evaluation reports on (`manage.py evaluate_bot`), except BANKING77's held-out
questions, which the demo set needs as its in-scope part:

- CLINC150: train as articles; val (in scope) and oos_train (out of scope).
- Bank demo: the demo knowledge base; BANKING77 held-out questions (in scope),
  CLINC150 oos_train and ten train questions of each intent outside banking
  and credit cards (out of scope).

It prints both tuples, with and without the softmax classifier (for indexes
above CLASSIFIER_MAX_CELLS), to paste into retrieval.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from support_bot.bot import retrieval
from support_bot.bot.retrieval import ArticleDoc, ArticleIndex
from support_bot.evaluation import (
    BANK_DOMAINS,
    intent_docs,
    read_csv,
)

REPO = Path(__file__).resolve().parent.parent
OFF_DOMAIN_PER_INTENT = 10

Pairs = list[tuple[str, str | None]]


def clinc_set(clinc: Path) -> tuple[list[ArticleDoc], dict[str, int], Pairs]:
    splits = json.loads((clinc / "data_train_val.json").read_text("utf-8"))
    docs, ids = intent_docs([(t, i) for t, i in splits["train"]])
    pairs: Pairs = [(t, i) for t, i in splits["val"]]
    pairs += [(t, None) for t, _ in splits["oos_train"]]
    return docs, ids, pairs


def bank_set(clinc: Path) -> tuple[list[ArticleDoc], dict[str, int], Pairs]:
    kb = json.loads((REPO / "knowledge/demo/bank_kb.json").read_text("utf-8"))
    docs = [
        ArticleDoc(i + 1, a["title"], a["body"], tuple(a["example_questions"]))
        for i, a in enumerate(kb)
    ]
    ids = {a["intent"]: i + 1 for i, a in enumerate(kb)}
    splits = json.loads((clinc / "data_train_val.json").read_text("utf-8"))
    domains = json.loads((clinc / "domains.json").read_text("utf-8"))
    domain_of = {i: d for d, intents in domains.items() for i in intents}
    pairs: Pairs = [(t, i) for t, i in read_csv(REPO / "eval/banking77_heldout.csv")]
    pairs += [(t, None) for t, _ in splits["oos_train"]]
    taken: dict[str, int] = {}
    for text, intent in splits["train"]:
        if domain_of[intent] in BANK_DOMAINS:
            continue
        if taken.get(intent, 0) < OFF_DOMAIN_PER_INTENT:
            taken[intent] = taken.get(intent, 0) + 1
            pairs.append((text, None))
    return docs, ids, pairs


def features(
    docs: list[ArticleDoc], ids: dict[str, int], pairs: Pairs
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    index = ArticleIndex.build(docs)
    ranking = index.rank([t for t, _ in pairs])
    rows = np.arange(len(pairs))
    top = ranking.rank.argmax(axis=1)
    ordered = np.sort(ranking.rank, axis=1)
    lead = ordered[:, -1] - ordered[:, -2]
    x = np.column_stack(
        [
            ranking.score[rows, top],
            lead,
            ranking.classifier[rows, top],
            ranking.words[rows, top],
        ]
    ).astype(np.float64)
    article_ids = np.array(index.ids)[top]
    y = np.array(
        [
            i is not None and ids[i] == a
            for (_, i), a in zip(pairs, article_ids, strict=True)
        ],
        dtype=np.float64,
    )
    return x, y


def fit_logistic(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], l2: float = 1e-3
) -> npt.NDArray[np.float64]:
    """Bias first; a tiny L2 keeps Newton's step defined for a constant column."""
    design = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(design @ w)))
        gradient = design.T @ (p - y) + l2 * w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    clinc = args.data / "clinc150"
    sets = [clinc_set(clinc), bank_set(clinc)]
    full_cells = retrieval.CLASSIFIER_MAX_CELLS
    for name, cells in (("WITH", full_cells), ("WITHOUT", 0)):
        retrieval.CLASSIFIER_MAX_CELLS = cells
        parts = [features(*s) for s in sets]
        x = np.vstack([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        w = fit_logistic(x, y)
        if cells == 0:
            w[3] = 0.0
        print(f"CONFIDENCE_{name}_CLASSIFIER = ({', '.join(f'{v:.2f}' for v in w)})")
        print(f"    {len(y)} questions, {y.mean():.1%} with the right top article")
    retrieval.CLASSIFIER_MAX_CELLS = full_cells


if __name__ == "__main__":
    main()
