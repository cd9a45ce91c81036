"""How often the demo bank hands over banking questions it has no article for.

Run from the project root:

    .venv/bin/python -m scripts.uncovered_banking [--data /work/shared/data]

The bank set of `manage.py evaluate_bot` escalates questions from other
domains and CLINC150's out-of-scope ones. The hardest questions to turn away
are nearer home: a bank customer asking about something the help centre does
not cover. CLINC150's banking and credit-card domains have 14 intents that
none of the demo's 77 BANKING77 articles is about (bills, interest, credit
scores and limits, rewards, cheques, routing numbers); every question of
theirs should be handed over. None of them was used to tune or fit anything.

Prints, at the given threshold, the share handed over per intent and for the
train and val questions together.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from support_bot.bot.retrieval import ArticleIndex
from support_bot.evaluation import Example, bank_set, run

REPO = Path(__file__).resolve().parent.parent

# Chosen by reading the 30 intents' names and questions against the demo's
# article titles; the other 16 (lost cards, PIN changes, transfers, declined
# cards, ...) have an article that answers them or comes close.
UNCOVERED = (
    "apr",
    "bill_balance",
    "bill_due",
    "credit_limit",
    "credit_limit_change",
    "credit_score",
    "improve_credit_score",
    "interest_rate",
    "min_payment",
    "order_checks",
    "pay_bill",
    "redeem_rewards",
    "rewards_balance",
    "routing",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()

    clinc = args.data / "clinc150"
    bank = bank_set(REPO, clinc)
    index = ArticleIndex.build(bank.docs)
    splits = json.loads((clinc / "data_train_val.json").read_text("utf-8"))
    asked = [(t, i) for t, i in splits["train"] + splits["val"] if i in UNCOVERED]

    outcomes = run(index, [Example(text, None) for text, _ in asked])
    handed_over = outcomes.escalated(args.threshold)
    print(f"threshold {args.threshold:.2f}: handed over / questions")
    for intent in UNCOVERED:
        mine = [k for k, (_, i) in enumerate(asked) if i == intent]
        share = handed_over[mine].mean()
        print(f"  {intent:22} {share:6.1%} of {len(mine)}")
    print(f"  {'all':22} {handed_over.mean():6.1%} of {len(asked)}")


if __name__ == "__main__":
    main()
