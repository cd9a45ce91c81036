"""Measure and tune knowledge-article retrieval on public intent data sets.

Run from the project root:

    .venv/bin/python -m scripts.tune_retrieval [--data /work/shared/data]

It reports:

(a) BANKING77: per intent, 75 % of the questions are an article's example
    questions and the other 25 % are asked; top-1 routing accuracy. A question is
    held out when sha1(lower-cased text) % 4 == 0, so the split never changes.
(b) CLINC150: 150 intents as articles, their train questions as examples. The
    threshold leaves 10 % of in-scope val questions under it; in-scope accuracy
    (right intent and above the threshold) and out-of-scope recall on oos_val.
(c) The bank demo's decline threshold: BANKING77 held-out questions (should be
    answered) against CLINC150 out-of-scope questions and CLINC150 questions from
    domains a bank does not serve (should be declined).
(d) Follow-up handling: hand-written follow-ups that need the previous turn, and
    self-contained questions given an unrelated previous turn.
(e) Build, embed and search time over 10,000 synthetic articles.

Each signal is reported with and without it, so only measured gains are kept in
`support_bot.bot.retrieval`.

Data credits: BANKING77 by Casanueva et al. (2020), CC BY 4.0; CLINC150 by Larson
et al. (2019), CC BY 3.0.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from support_bot.bot.embeddings import embed
from support_bot.bot.retrieval import (
    CENTROID_WEIGHT,
    CONTEXT_WEIGHT,
    ArticleDoc,
    ArticleIndex,
    looks_like_follow_up,
    query_vector,
)

Matrix = npt.NDArray[np.float32]
Labelled = list[tuple[str, str]]

# CLINC150 domains whose questions a bank's assistant should answer; every other
# domain (travel, cooking, small talk, ...) is out of scope for the bank demo.
BANK_DOMAINS = ("banking", "credit_cards")
# Questions per article in the few-example setting, closer to a hand-written
# knowledge base than BANKING77's ~97 per intent.
FEW_SHOT = 5
THRESHOLDS = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65)
SYNTHETIC_ARTICLES = 10_000

# (previous customer turn, follow-up, acceptable BANKING77 intents). Written for
# this script: the follow-up alone is ambiguous and only the previous turn says
# which article it is about.
FOLLOW_UPS: tuple[tuple[str, str, frozenset[str]], ...] = tuple(
    (context, follow_up, frozenset(intents.split()))
    for context, follow_up, intents in (
        (
            "I lost my card, how do I get a new one?",
            "how long does that take?",
            "card_delivery_estimate card_arrival",
        ),
        (
            "I want to send money to my friend's bank account in Spain",
            "how long does that take?",
            "transfer_timing",
        ),
        (
            "I want to send money to my friend's bank account",
            "how much does it cost?",
            "transfer_fee_charged",
        ),
        (
            "Can I top up my account with my debit card?",
            "is there a fee for that?",
            "top_up_by_card_charge",
        ),
        (
            "How do I take cash out at an ATM abroad?",
            "what does that cost?",
            "cash_withdrawal_charge",
        ),
        (
            "I want to exchange dollars to euros in the app",
            "what rate do you use for that?",
            "exchange_rate",
        ),
        (
            "I'd like to order a physical card",
            "when will it arrive?",
            "card_delivery_estimate card_arrival",
        ),
        (
            "My transfer to my landlord hasn't gone through yet",
            "why is it taking so long?",
            "pending_transfer transfer_timing transfer_not_received_by_recipient",
        ),
        ("I sent money to the wrong person", "can I cancel it?", "cancel_transfer"),
        ("Can I change my PIN?", "where do I do that?", "change_pin"),
        ("I want to close my account", "how do I do that?", "terminate_account"),
        ("Do you support Apple Pay?", "how do I set it up?", "apple_pay_or_google_pay"),
        (
            "You are asking me to verify my identity",
            "why do you need that?",
            "why_verify_identity",
        ),
        (
            "I want to top up by bank transfer",
            "is there a charge for that?",
            "top_up_by_bank_transfer_charge",
        ),
        (
            "My card expires next month",
            "what should I do about it?",
            "card_about_to_expire",
        ),
        (
            "Can I get a disposable virtual card?",
            "how many times can I use it?",
            "disposable_card_limits",
        ),
        (
            "My card payment was declined at the shop",
            "why did that happen?",
            "declined_card_payment",
        ),
        ("Is there a maximum amount I can top up?", "what is it?", "top_up_limits"),
        (
            "Can I get a second card for my partner?",
            "how much is that?",
            "getting_spare_card",
        ),
        (
            "I deposited a cheque yesterday",
            "why isn't it showing yet?",
            "balance_not_updated_after_cheque_or_cash_deposit",
        ),
        (
            "I'd like a virtual card",
            "how do I get one?",
            "getting_virtual_card get_disposable_virtual_card",
        ),
        (
            "I want to withdraw cash at the ATM",
            "is there a fee for that?",
            "cash_withdrawal_charge",
        ),
        (
            "I paid for something in a foreign currency",
            "what about the exchange fee?",
            "exchange_charge card_payment_fee_charged",
        ),
        ("My card got stuck in the ATM", "what do I do now?", "card_swallowed"),
    )
)


def text_hash(text: str) -> int:
    return int(hashlib.sha1(text.lower().encode("utf-8")).hexdigest(), 16)


def is_held_out(text: str) -> bool:
    return text_hash(text) % 4 == 0


def humanise(intent: str) -> str:
    """An intent label as an article title: "card_arrival" -> "card arrival"."""
    return intent.replace("_", " ").strip(" ?").lower()


def few_shot(pairs: Labelled, n: int) -> Labelled:
    """The first `n` questions per intent in hash order (deterministic)."""
    taken: dict[str, int] = {}
    out: Labelled = []
    for text, intent in sorted(pairs, key=lambda p: text_hash(p[0])):
        if taken.get(intent, 0) < n:
            taken[intent] = taken.get(intent, 0) + 1
            out.append((text, intent))
    return out


def docs_for(intents: Sequence[str], examples: Labelled) -> list[ArticleDoc]:
    by_intent: dict[str, list[str]] = {intent: [] for intent in intents}
    for text, intent in examples:
        by_intent[intent].append(text)
    return [
        ArticleDoc(i, humanise(intent), "", tuple(by_intent[intent]))
        for i, intent in enumerate(intents)
    ]


@dataclass(frozen=True)
class Variant:
    name: str
    lowercase: bool
    centroid_weight: float


BASELINE = Variant("nearest example, cased", False, 0.0)
VARIANTS = (
    BASELINE,
    Variant("nearest example, lower-cased", True, 0.0),
    Variant(f"+ centroid {CENTROID_WEIGHT} (shipped)", True, CENTROID_WEIGHT),
)


def build_variant(docs: Sequence[ArticleDoc], variant: Variant) -> ArticleIndex:
    """An index like `ArticleIndex.build`, with the signals under test switchable.

    The shipped variant goes through `build` itself, so what is reported is what
    the bot runs.
    """
    if variant.lowercase and variant.centroid_weight == CENTROID_WEIGHT:
        return ArticleIndex.build(docs)
    texts: list[str] = []
    starts: list[int] = []
    for doc in docs:
        starts.append(len(texts))
        own = [doc.title, *doc.questions]
        texts.extend(
            " ".join(t.lower().split()) if variant.lowercase else t for t in own
        )
    return ArticleIndex(
        [d.id for d in docs],
        [d.title for d in docs],
        embed(texts),
        np.array(starts, dtype=np.intp),
        centroid_weight=variant.centroid_weight,
    )


def embed_queries(texts: Sequence[str], lowercase: bool) -> Matrix:
    return embed([" ".join(t.lower().split()) if lowercase else t for t in texts])


def top1(scores: Matrix) -> npt.NDArray[np.intp]:
    best: npt.NDArray[np.intp] = np.argmax(scores, axis=1)
    return best


def best_two(scores: Matrix) -> tuple[Matrix, Matrix]:
    part = np.partition(scores, -2, axis=1)
    return part[:, -1], part[:, -2]


def pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def load_banking77(data: Path) -> tuple[list[str], Labelled, Labelled]:
    with (data / "banking77" / "train.csv").open(newline="", encoding="utf-8") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    intents = sorted({intent for _, intent in rows})
    train = [r for r in rows if not is_held_out(r[0])]
    test = [r for r in rows if is_held_out(r[0])]
    return intents, train, test


def load_clinc150(data: Path) -> tuple[dict[str, Labelled], dict[str, str]]:
    root = data / "clinc150"
    splits = json.loads((root / "data_train_val.json").read_text(encoding="utf-8"))
    domains = json.loads((root / "domains.json").read_text(encoding="utf-8"))
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}
    return {k: [(t, i) for t, i in v] for k, v in splits.items()}, domain_of


def part_a(intents: list[str], train: Labelled, test: Labelled) -> None:
    print("\n(a) BANKING77 held-out top-1 routing accuracy")
    print(f"    {len(train)} example questions, {len(test)} held-out questions")
    labels = np.array([intents.index(i) for _, i in test])
    questions = [t for t, _ in test]
    settings = (
        ("all 75 %", train),
        (f"{FEW_SHOT} per intent", few_shot(train, FEW_SHOT)),
    )
    print(f"    {'variant':34} " + " ".join(f"{name:>16}" for name, _ in settings))
    shouting = [q.upper() for q in questions]
    for variant in VARIANTS:
        cells = []
        for _, examples in settings:
            index = build_variant(docs_for(intents, examples), variant)
            scores = index.scores(embed_queries(questions, variant.lowercase))
            cells.append(pct(float(np.mean(top1(scores) == labels))))
        print(f"    {variant.name:34} " + " ".join(f"{c:>16}" for c in cells))
    # The bot hands the top RETRIEVAL_TOP_K (3) articles to the answering model,
    # so "right article among the three" is what bounds its answers.
    for setting, examples in settings:
        index = ArticleIndex.build(docs_for(intents, examples))
        scores = index.scores(embed_queries(questions, True))
        top3 = np.argpartition(-scores, 2, axis=1)[:, :3]
        hit = float(np.mean((top3 == labels[:, None]).any(axis=1)))
        print(f"    shipped, right article in top 3, {setting:>14}: {pct(hit)}")
    print("    questions typed in capitals (all 75 % as examples):")
    for variant in (BASELINE, VARIANTS[-1]):
        index = build_variant(docs_for(intents, train), variant)
        scores = index.scores(embed_queries(shouting, variant.lowercase))
        accuracy = float(np.mean(top1(scores) == labels))
        print(f"    {variant.name:34} {pct(accuracy):>16}")


def part_b(splits: dict[str, Labelled]) -> None:
    print("\n(b) CLINC150 with a threshold leaving 10 % of in-scope val under it")
    intents = sorted({i for _, i in splits["train"]})
    labels = np.array([intents.index(i) for _, i in splits["val"]])
    val = [t for t, _ in splits["val"]]
    oos = [t for t, _ in splits["oos_val"]]

    def best_only(best: Matrix, second: Matrix) -> Matrix:
        return best

    def with_margin(best: Matrix, second: Matrix) -> Matrix:
        # Caller-side option: a clear winner is surer than a near tie.
        return best + 0.5 * (best - second)

    confidences: tuple[tuple[str, Callable[[Matrix, Matrix], Matrix]], ...] = (
        ("score", best_only),
        ("score + 0.5 margin", with_margin),
    )
    print(
        f"    {'variant':34} {'confidence':20} {'top-1':>8} {'thresh':>7}"
        f" {'in-scope acc':>13} {'oos recall':>11}"
    )
    for variant in VARIANTS:
        index = build_variant(docs_for(intents, splits["train"]), variant)
        val_scores = index.scores(embed_queries(val, variant.lowercase))
        oos_scores = index.scores(embed_queries(oos, variant.lowercase))
        right = top1(val_scores) == labels
        for name, confidence in confidences:
            val_conf = confidence(*best_two(val_scores))
            oos_conf = confidence(*best_two(oos_scores))
            threshold = float(np.quantile(val_conf, 0.10))
            in_scope = float(np.mean(right & (val_conf >= threshold)))
            recall = float(np.mean(oos_conf < threshold))
            print(
                f"    {variant.name:34} {name:20} {pct(float(np.mean(right))):>8}"
                f" {threshold:7.3f} {pct(in_scope):>13} {pct(recall):>11}"
            )
    print(
        "    (paper, full training set, test split: BERT 96.2 % / 52.3 %,"
        " MLP 93.4 % / 49.1 %)"
    )


def part_b_lead(splits: dict[str, Labelled]) -> None:
    """Neither data set has article bodies. As a stand-in for a body lead, give
    each intent one longer on-topic text: three of its other train questions run
    together. It shows whether one long, averaged text per article helps or
    blurs routing and the in/out-of-scope split."""
    print(f"\n(b') CLINC150, {FEW_SHOT} examples per intent, with a stand-in body lead")
    intents = sorted({i for _, i in splits["train"]})
    examples = few_shot(splits["train"], FEW_SHOT)
    chosen = set(examples)
    spare: dict[str, list[str]] = {i: [] for i in intents}
    for text, intent in sorted(splits["train"], key=lambda p: text_hash(p[0])):
        if (text, intent) not in chosen:
            spare[intent].append(text)
    labels = np.array([intents.index(i) for _, i in splits["val"]])
    val = embed_queries([t for t, _ in splits["val"]], True)
    oos = embed_queries([t for t, _ in splits["oos_val"]], True)
    for name, with_lead in (("without lead", False), ("with lead", True)):
        docs = [
            ArticleDoc(
                d.id,
                d.title,
                ". ".join(spare[intents[d.id]][:3]) if with_lead else "",
                d.questions,
            )
            for d in docs_for(intents, examples)
        ]
        index = ArticleIndex.build(docs)
        val_scores = index.scores(val)
        val_best = val_scores.max(axis=1)
        threshold = float(np.quantile(val_best, 0.10))
        right = top1(val_scores) == labels
        in_scope = float(np.mean(right & (val_best >= threshold)))
        recall = float(np.mean(index.scores(oos).max(axis=1) < threshold))
        print(
            f"    {name:14} top-1 {pct(float(np.mean(right)))}, in-scope acc"
            f" {pct(in_scope)}, oos recall {pct(recall)}"
        )


def part_c(
    intents: list[str],
    train: Labelled,
    test: Labelled,
    splits: dict[str, Labelled],
    domain_of: dict[str, str],
) -> None:
    print("\n(c) Bank demo: answer BANKING77, decline what a bank does not do")
    labels = np.array([intents.index(i) for _, i in test])
    questions = [t for t, _ in test]
    oos = [t for t, _ in splits["oos_val"] + splits["oos_train"]]
    off_domain = [
        t for t, i in splits["val"] if domain_of.get(i, "") not in BANK_DOMAINS
    ]
    print(
        f"    {len(questions)} in scope; declines: {len(oos)} CLINC150 oos,"
        f" {len(off_domain)} CLINC150 val questions outside {'/'.join(BANK_DOMAINS)}"
    )
    for setting, examples in (
        ("all 75 % as examples", train),
        (f"{FEW_SHOT} examples per article", few_shot(train, FEW_SHOT)),
    ):
        index = ArticleIndex.build(docs_for(intents, examples))
        in_scores = index.scores(embed_queries(questions, True))
        in_best = in_scores.max(axis=1)
        right = top1(in_scores) == labels
        oos_best = index.scores(embed_queries(oos, True)).max(axis=1)
        off_best = index.scores(embed_queries(off_domain, True)).max(axis=1)
        print(f"\n    index: {setting}")
        print("    best score percentiles     5 %   10 %   25 %   50 %   75 %   95 %")
        for name, best in (
            ("BANKING77 held-out", in_best),
            ("CLINC150 oos", oos_best),
            ("CLINC150 other domains", off_best),
        ):
            cells = np.percentile(best, [5, 10, 25, 50, 75, 95])
            print(f"    {name:24}" + "".join(f"{c:7.3f}" for c in cells))
        top3 = np.argpartition(-in_scores, 2, axis=1)[:, :3]
        right3 = (top3 == labels[:, None]).any(axis=1)
        print(
            "    threshold  answered  right+answered  oos declined"
            "  other declined  precision(oos)  precision(all)"
        )
        for threshold in THRESHOLDS:
            answered = in_best >= threshold
            oos_answered = int(np.sum(oos_best >= threshold))
            off_answered = int(np.sum(off_best >= threshold))
            n_answered = int(np.sum(answered))
            # Precision of "answer": of the questions answered, the share a bank
            # should answer. Depends on the mix; here ~12:1 and ~1:1.
            precision_oos = n_answered / max(1, n_answered + oos_answered)
            precision_all = n_answered / max(
                1, n_answered + oos_answered + off_answered
            )
            print(
                f"    {threshold:9.2f} {pct(float(np.mean(answered))):>9}"
                f" {pct(float(np.mean(answered & right))):>15}"
                f" {pct(float(np.mean(oos_best < threshold))):>13}"
                f" {pct(float(np.mean(off_best < threshold))):>15}"
                f" {pct(precision_oos):>15} {pct(precision_all):>15}"
            )
        # Recommend the threshold that best balances answering what a bank
        # should answer against declining the rest (both decline sets weigh
        # the same), on a 0.01 grid.
        grid = np.round(np.arange(0.20, 0.80, 0.01), 2)
        answer_rate = (in_best[None, :] >= grid[:, None]).mean(axis=1)
        decline_rate = (
            (oos_best[None, :] < grid[:, None]).mean(axis=1)
            + (off_best[None, :] < grid[:, None]).mean(axis=1)
        ) / 2
        pick = int(np.argmax(answer_rate + decline_rate))
        t = float(grid[pick])
        kept = in_best >= t
        print(
            f"    recommended {t:.2f}: answers {pct(float(answer_rate[pick]))} of bank"
            f" questions (right article first {pct(float(np.mean(right & kept)))},"
            f" in top 3 {pct(float(np.mean(right3 & kept)))}),"
            f" declines {pct(float(np.mean(oos_best < t)))} of oos and"
            f" {pct(float(np.mean(off_best < t)))} of other domains"
        )


def part_d(intents: list[str], train: Labelled, test: Labelled) -> None:
    print("\n(d) Follow-ups (previous turn as context)")
    index = ArticleIndex.build(docs_for(intents, train))
    labels = np.array([intents.index(i) for _, i in test])
    questions = [t for t, _ in test]
    # Each held-out question gets the previous turn of a different intent:
    # the worst case for a context rule, which must leave them alone.
    rng = random.Random(0)
    contexts: list[str] = []
    for _, intent in test:
        while True:
            text, other = test[rng.randrange(len(test))]
            if other != intent:
                contexts.append(text)
                break
    q = embed_queries(questions, True)
    c = embed_queries(contexts, True)

    def always(qm: Matrix, cm: Matrix) -> Matrix:
        blended = qm + CONTEXT_WEIGHT * cm
        normalised: Matrix = blended / np.linalg.norm(blended, axis=1, keepdims=True)
        return normalised

    fired = [looks_like_follow_up(t) for t in questions]
    rule = np.stack(
        [query_vector(t, ctx) for t, ctx in zip(questions, contexts, strict=True)]
    )
    self_no_context = float(np.mean(top1(index.scores(q)) == labels))
    self_always = float(np.mean(top1(index.scores(always(q, c))) == labels))
    self_rule = float(np.mean(top1(index.scores(rule)) == labels))

    def follow_up_accuracy(vectors: Matrix) -> float:
        best = top1(index.scores(vectors))
        return float(
            np.mean(
                [
                    intents[b] in ok
                    for b, (_, _, ok) in zip(best, FOLLOW_UPS, strict=True)
                ]
            )
        )

    fq = embed_queries([f for _, f, _ in FOLLOW_UPS], True)
    fc = embed_queries([ctx for ctx, _, _ in FOLLOW_UPS], True)
    fu_rule = np.stack([query_vector(f, ctx) for ctx, f, _ in FOLLOW_UPS])
    fu_fired = [looks_like_follow_up(f) for _, f, _ in FOLLOW_UPS]
    print(f"    {'':28} {'self-contained':>15} {'follow-ups':>11}")
    print(
        f"    {'ignore context':28} {pct(self_no_context):>15} "
        f"{pct(follow_up_accuracy(fq)):>11}"
    )
    print(
        f"    {'always blend':28} {pct(self_always):>15} "
        f"{pct(follow_up_accuracy(always(fq, fc))):>11}"
    )
    print(
        f"    {'blend if looks like follow-up':28} {pct(self_rule):>15} "
        f"{pct(follow_up_accuracy(fu_rule)):>11}"
    )
    print(
        f"    rule fired on {pct(float(np.mean(fired)))} of self-contained questions"
        f" and on {sum(fu_fired)} of {len(FOLLOW_UPS)} follow-ups"
    )


def part_e(pool: Sequence[str]) -> None:
    print(f"\n(e) Timing over {SYNTHETIC_ARTICLES:,} synthetic articles")
    rng = random.Random(1)
    words = sorted({w for text in pool for w in text.lower().split()})
    docs = [
        ArticleDoc(
            i,
            " ".join(rng.sample(words, 4)),
            " ".join(rng.choices(words, k=40)),
            tuple(rng.choice(pool) + f" {rng.choice(words)}" for _ in range(5)),
        )
        for i in range(SYNTHETIC_ARTICLES)
    ]
    start = time.perf_counter()
    index = ArticleIndex.build(docs)
    build = time.perf_counter() - start
    queries = rng.sample(list(pool), 500)
    start = time.perf_counter()
    vectors = [query_vector(t) for t in queries]
    embed_ms = 1000 * (time.perf_counter() - start) / len(queries)

    def per_query_ms(run: Callable[[], object], repeats: int = 3) -> float:
        # Best of a few passes: the machine is shared, and the slowest pass
        # measures the neighbours rather than the code.
        run()
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            passes.append(time.perf_counter() - start)
        return 1000 * min(passes) / len(queries)

    search_ms = per_query_ms(lambda: [index.search_vector(v, k=5) for v in vectors])
    total_ms = per_query_ms(
        lambda: [index.search(t, k=5, context="I lost my card") for t in queries]
    )
    matrix_mb = index.vector_count * 256 * 4 / 1e6
    print(
        f"    build {build:.1f} s for {index.vector_count:,} vectors"
        f" ({matrix_mb:.0f} MB float32)"
    )
    print(
        f"    per query: embed {embed_ms:.3f} ms, score+top-5 {search_ms:.2f} ms,"
        f" whole search(k=5, context=...) {total_ms:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    intents, train, test = load_banking77(args.data)
    splits, domain_of = load_clinc150(args.data)
    part_a(intents, train, test)
    part_b(splits)
    part_b_lead(splits)
    part_c(intents, train, test, splits, domain_of)
    part_d(intents, train, test)
    part_e([t for t, _ in train] + [t for t, _ in splits["train"]])


if __name__ == "__main__":
    main()
