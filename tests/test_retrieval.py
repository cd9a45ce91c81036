"""Retrieval and embeddings on a small hand-written bank knowledge base.

No database and no network: the embedding model ships inside the wordllama wheel.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from support_bot.bot import embeddings, retrieval
from support_bot.bot.embeddings import DIM, count_tokens, embed
from support_bot.bot.retrieval import (
    ArticleDoc,
    ArticleIndex,
    Hit,
    looks_like_follow_up,
)

# What `scripts/tune_retrieval.py` recommends for a bank knowledge base with a
# handful of example questions per article.
RECOMMENDED_MIN_SCORE = 0.45

CARD_DELIVERY = 1
LOST_CARD = 2
TRANSFER_TIMING = 3
TRANSFER_FEES = 4
PIN = 5

DOCS = (
    ArticleDoc(
        CARD_DELIVERY,
        "How long does a new card take to arrive?",
        "We post new and replacement cards within one working day. Delivery "
        "usually takes 3 to 5 working days, and you can track the card in the app.",
        (
            "When will my new card arrive?",
            "How long does card delivery take?",
            "My card still hasn't arrived",
            "How long until I receive my replacement card?",
        ),
    ),
    ArticleDoc(
        LOST_CARD,
        "Report a lost or stolen card",
        "If your card is lost or stolen, freeze it in the app straight away, then "
        "order a replacement from the Card screen.",
        (
            "I lost my card",
            "My card was stolen",
            "How do I freeze my card?",
            "I can't find my card anywhere",
        ),
    ),
    ArticleDoc(
        TRANSFER_TIMING,
        "How long do transfers take?",
        "Transfers between Kestrel accounts are instant. Bank transfers usually "
        "arrive within 2 hours; international transfers take 1 to 3 working days.",
        (
            "How long does a transfer take?",
            "When will my transfer arrive?",
            "Why hasn't my transfer arrived yet?",
            "How long do international payments take?",
        ),
    ),
    ArticleDoc(
        TRANSFER_FEES,
        "Transfer fees",
        "Transfers in pounds are free. International transfers cost 0.5 % of the "
        "amount, at least 1 pound.",
        (
            "How much does it cost to send money?",
            "Is there a fee for international transfers?",
            "Why was I charged for a transfer?",
        ),
    ),
    ArticleDoc(
        PIN,
        "Change or reset your PIN",
        "You can see and change your PIN in the app under Card, then PIN. After "
        "three wrong tries the PIN is blocked for 24 hours.",
        ("How do I change my PIN?", "I forgot my PIN", "My PIN is blocked"),
    ),
)


@pytest.fixture(scope="module")
def index() -> ArticleIndex:
    return ArticleIndex.build(DOCS)


def best(index: ArticleIndex, query: str, context: str | None = None) -> Hit:
    hits = index.search(query, k=1, context=context)
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize(
    ("question", "article_id"),
    [
        ("my debit card never arrived", CARD_DELIVERY),
        ("WHERE IS MY NEW CARD", CARD_DELIVERY),
        ("someone took my wallet with my card in it", LOST_CARD),
        ("what do you charge for sending money overseas", TRANSFER_FEES),
        ("is my payment to a friend going to be slow", TRANSFER_TIMING),
        ("I can't remember my PIN number", PIN),
    ],
)
def test_paraphrases_route_to_the_article_that_answers_them(
    index: ArticleIndex, question: str, article_id: int
) -> None:
    assert best(index, question).article_id == article_id


def test_follow_up_after_a_lost_card_resolves_to_card_delivery(
    index: ArticleIndex,
) -> None:
    hit = best(
        index, "how long does that take?", "I lost my card, how do I get a new one"
    )
    assert hit.article_id == CARD_DELIVERY


def test_same_follow_up_after_a_transfer_resolves_to_transfer_timing(
    index: ArticleIndex,
) -> None:
    hit = best(
        index,
        "how long does that take?",
        "I want to send money to my sister's account abroad",
    )
    assert hit.article_id == TRANSFER_TIMING


def test_follow_up_about_price_after_a_transfer_resolves_to_fees(
    index: ArticleIndex,
) -> None:
    context = "I want to send money to my sister's account abroad"
    assert best(index, "how much is that?", context).article_id == TRANSFER_FEES


def test_self_contained_question_is_not_pulled_to_the_previous_topic(
    index: ArticleIndex,
) -> None:
    context = "I lost my card, how do I get a new one"
    assert best(index, "How do I change my PIN?", context).article_id == PIN
    assert best(index, "is there a fee for international transfers", context) == (
        best(index, "is there a fee for international transfers")
    )


def test_follow_up_rule_fires_on_short_back_references_only() -> None:
    assert looks_like_follow_up("how long does that take?")
    assert looks_like_follow_up("and what about fees")
    assert looks_like_follow_up("how much is it?")
    assert not looks_like_follow_up("is it possible to cancel a transfer?")
    assert not looks_like_follow_up("how do I change my PIN?")
    assert not looks_like_follow_up(
        "how long does it take for an international transfer to arrive in Spain"
    )
    assert not looks_like_follow_up("")


@pytest.mark.parametrize(
    "question",
    [
        "what's the weather in Paris",
        "who won the football last night",
        "can you recommend a good pizza place",
        "tell me a joke",
    ],
)
def test_unrelated_questions_score_below_the_recommended_threshold(
    index: ArticleIndex, question: str
) -> None:
    assert best(index, question).score < RECOMMENDED_MIN_SCORE


def test_paraphrases_clear_the_recommended_threshold(index: ArticleIndex) -> None:
    assert best(index, "How do I reset my PIN?").score >= RECOMMENDED_MIN_SCORE
    assert best(index, "when does my new card arrive").score >= RECOMMENDED_MIN_SCORE


def test_search_returns_k_distinct_articles_best_first(index: ArticleIndex) -> None:
    hits = index.search("how long does a transfer take", k=5)
    assert len(hits) == len(DOCS)
    assert len({h.article_id for h in hits}) == len(hits)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert all(0.0 <= h.confidence <= 1.0 for h in hits)
    assert hits[0].confidence == max(h.confidence for h in hits)
    assert hits[0].title == "How long do transfers take?"
    assert len(index.search("how long does a transfer take", k=50)) == len(DOCS)


def test_empty_index_and_blank_query_find_nothing(index: ArticleIndex) -> None:
    assert ArticleIndex.build([]).search("where is my card") == []
    assert index.search("   ") == []
    assert index.search("where is my card", k=0) == []


def test_article_without_questions_or_body_is_still_searchable() -> None:
    docs = [*DOCS, ArticleDoc(9, "Open a savings account", "", ())]
    hit = best(ArticleIndex.build(docs), "how do I open a savings account?")
    assert hit.article_id == 9


def test_duplicate_article_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        ArticleIndex.build([DOCS[0], DOCS[0]])


def test_count_tokens_is_zero_for_empty_text_and_grows_with_text() -> None:
    assert count_tokens("") == 0
    short = count_tokens("Where is my card?")
    longer = count_tokens("Where is my card? I ordered it two weeks ago.")
    assert 0 < short < longer
    assert count_tokens("word " * 200) >= 200


def test_embed_returns_unit_float32_rows_of_the_model_dimension() -> None:
    vectors = embed(["Where is my card?", "How long does a transfer take?"])
    assert vectors.shape == (2, DIM) == (2, 256)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_gives_zero_rows_for_empty_text_and_handles_no_texts() -> None:
    vectors = embed(["", "card"])
    assert not np.isnan(vectors).any()
    assert np.linalg.norm(vectors[0]) == 0.0
    assert embed([]).shape == (0, DIM)
    with pytest.raises(TypeError):
        embed("a bare string")


def test_model_loads_once_when_first_used_from_many_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wordllama

    original = wordllama.WordLlama.load
    calls: list[dict[str, object]] = []

    def counting_load(**kwargs: object) -> object:
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(wordllama.WordLlama, "load", counting_load)
    monkeypatch.setattr(embeddings, "_model", None)
    start = threading.Barrier(8)
    models: list[object] = []

    def first_use() -> None:
        start.wait()
        models.append(embeddings._load())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert calls[0]["disable_download"] is True
    assert len(models) == 8
    assert all(model is models[0] for model in models)


def test_a_clear_paraphrase_is_confident_and_the_runners_up_are_not(
    index: ArticleIndex,
) -> None:
    hits = index.search("How do I reset my PIN?", k=3)
    assert hits[0].article_id == PIN
    assert hits[0].confidence > 0.9
    assert all(h.confidence < 0.1 for h in hits[1:])


def test_a_question_between_two_articles_is_not_answered_confidently(
    index: ArticleIndex,
) -> None:
    # Never showing up is a late delivery or a lost card: the bot should not
    # bet on either.
    hit = best(index, "my debit card never showed up")
    assert hit.article_id in (CARD_DELIVERY, LOST_CARD)
    assert hit.confidence < 0.5


@pytest.mark.parametrize("question", ["what's the weather in Paris", "tell me a joke"])
def test_unrelated_questions_get_almost_no_confidence(
    index: ArticleIndex, question: str
) -> None:
    assert best(index, question).confidence < 0.1


def test_index_too_large_for_the_classifier_still_routes_and_calibrates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retrieval, "CLASSIFIER_MAX_CELLS", 0)
    small = ArticleIndex.build(DOCS)
    assert not small.has_classifier
    hit = best(small, "I can't remember my PIN number")
    assert hit.article_id == PIN
    assert 0.5 < hit.confidence <= 1.0
    assert best(small, "tell me a joke").confidence < 0.1


def test_one_article_index_needs_no_classifier() -> None:
    single = ArticleIndex.build(DOCS[:1])
    assert not single.has_classifier
    assert best(single, "when will my card come").article_id == CARD_DELIVERY


QUERIES = ["where is my new card", "how much does a transfer cost", "change my pin"]


def confidences(index: ArticleIndex) -> list[list[float]]:
    return [[h.confidence for h in index.search(q)] for q in QUERIES]


def test_a_cached_classifier_is_the_one_training_would_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = ArticleIndex.build(DOCS, classifier_cache=tmp_path)
    assert len(list(tmp_path.glob("classifier-*.npz"))) == 1

    def no_training(*args: object) -> None:
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(retrieval._SoftmaxClassifier, "train", no_training)
    cached = ArticleIndex.build(DOCS, classifier_cache=tmp_path)

    assert confidences(cached) == confidences(trained)


def test_an_unreadable_cache_file_is_trained_again_and_replaced(
    tmp_path: Path,
) -> None:
    trained = ArticleIndex.build(DOCS, classifier_cache=tmp_path)
    [saved] = tmp_path.glob("classifier-*.npz")
    saved.write_bytes(b"half a file")

    again = ArticleIndex.build(DOCS, classifier_cache=tmp_path)

    assert confidences(again) == confidences(trained)
    with np.load(saved, allow_pickle=False) as replaced:
        assert set(replaced.files) == {"mean", "scale", "weights", "bias"}


def test_other_articles_get_a_classifier_of_their_own(tmp_path: Path) -> None:
    ArticleIndex.build(DOCS, classifier_cache=tmp_path)
    ArticleIndex.build(DOCS[:-1], classifier_cache=tmp_path)

    assert len(list(tmp_path.glob("classifier-*.npz"))) == 2


def test_only_the_recently_used_classifiers_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrieval, "CLASSIFIER_CACHE_KEEP", 2)
    for size in (len(DOCS), len(DOCS) - 1, len(DOCS) - 2):
        ArticleIndex.build(DOCS[:size], classifier_cache=tmp_path)

    assert len(list(tmp_path.glob("classifier-*.npz"))) == 2
