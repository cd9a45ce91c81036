"""Route a customer question to the knowledge articles most likely to answer it.

Each article is represented by several vectors: its title, each of its example
questions and a short lead of its body. A query is scored against an article by

    score = (1 - CENTROID_WEIGHT) * nearest + CENTROID_WEIGHT * centroid

where `nearest` is the best cosine similarity over the article's vectors (how close
the query is to the closest way customers ask for this article) and `centroid` is
the cosine similarity to the normalised mean of those vectors (how close it is to
the article's topic as a whole). Both are cosines, so the score is one too, in
[-1, 1].

Two classifiers trained when the index is built add what a similarity cannot
see: which directions of the embedding separate one article from its
neighbours (a softmax regression over the vectors), and which words and word
pairs each article's questions use (a naive Bayes model). Articles are ranked by

    rank = score + CLASSIFIER_WEIGHT * p_softmax + WORDS_WEIGHT * p_words

and each hit carries a `confidence`: a logistic of its score, its rank's lead
over the best other article and the two probabilities, fitted on held-out
questions so that it reads as the probability that the article is the right
answer. That, not the raw score, is what a decline threshold should use.

The choices below were measured on BANKING77 and CLINC150 while tuning;
`scripts/tune_retrieval.py` reproduces the main numbers quoted in comments.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .embeddings import DIM, embed

logger = logging.getLogger(__name__)

__all__ = [
    "CENTROID_WEIGHT",
    "CLASSIFIER_WEIGHT",
    "CONTEXT_WEIGHT",
    "WORDS_WEIGHT",
    "ArticleDoc",
    "ArticleIndex",
    "Hit",
    "Ranking",
    "looks_like_follow_up",
    "query_vector",
]

# Nearest-example similarity alone over-rewards one lucky paraphrase. Mixing in
# the centroid raised BANKING77 held-out top-1 from 86.9 % to 87.5 % (from 68.0 %
# to 70.2 % with 5 examples per intent) and CLINC150 val from 82.5 % to 87.6 %,
# and it separates out-of-scope questions better: at the threshold that turns
# away 10 % of CLINC150's in-scope questions, 89 % instead of 81 % of its
# out-of-scope ones fall under it. Weights 0.3 to 0.5 all help; above 0.5 the
# many-example case loses. (Adding the best-minus-second margin to the score
# gained only 0.5 points of in-scope accuracy and no out-of-scope recall, so it
# is left out; callers can still read it off the hits.)
CENTROID_WEIGHT = 0.4

# How much of the previous customer turn is added to a follow-up's vector
# (before renormalising). 0.5 resolved 79 % of the hand-written follow-ups, 0.75
# and 1.0 both 88 %; below 1 the follow-up's own words stay in charge when the
# rule misfires on a self-contained question (1.0 cost 0.9 more points there).
CONTEXT_WEIGHT = 0.75

# A follow-up is short. BANKING77 questions have a median of 10 words and only
# 15 % have 6 or fewer, while elliptical follow-ups ("how long does that take?",
# "is there a fee for that?") have 3 to 7. A limit of 10 words caught no more
# follow-ups but fired on 6.4 % of self-contained questions instead of 2.5 %.
FOLLOW_UP_MAX_WORDS = 8

# Body text indexed as one more vector per article. Word-vector averages of long
# text drift towards a generic direction, so only the opening is used; it is the
# part that says what the article is about. Neither data set has bodies; with a
# stand-in (three more questions run together, on CLINC150 with 5 examples per
# intent) one such text per article lifted top-1 from 77 % to 80 % and
# out-of-scope recall from 73 % to 80 %.
LEAD_CHARS = 200

# Weights of the two classifiers' probabilities in the ranking. On BANKING77's
# held-out questions (demo knowledge base) the similarity alone routes 86.6 %
# right, softmax regression alone 88.0 %, word naive Bayes alone 83.5 %, and
# the sum below 90.6 %: the three make different mistakes. On CLINC150 val the
# same sum lifts top-1 from 87.6 % to 93.3 %; from 0.2 to 0.5 either weight moves
# either set by under a point.
CLASSIFIER_WEIGHT = 0.3
WORDS_WEIGHT = 0.25

# Softmax regression is trained by full-batch gradient descent, whose cost is
# rows x articles x steps. Up to this many rows x articles (CLINC150's 15,000
# questions x 150 intents is 2.3 million) it is trained; above it (10,000
# articles with a handful of questions each is hundreds of millions) training
# would take minutes, so the index falls back to similarity and words alone,
# and confidence uses the constants fitted for that case. The fallback costs
# accuracy: with 5 questions per CLINC150 intent, similarity alone routes
# 77.3 % right and the full mix 82.6 %.
CLASSIFIER_MAX_CELLS = 3_000_000
# 100 steps take about a second for the demo's 7,600 rows (the whole build
# 1.5 s instead of 0.3 s); 300 steps routed no better.
CLASSIFIER_STEPS = 100
# Trained classifiers kept in a cache folder (see `ArticleIndex.build`); the
# most recently used are kept, the rest deleted.
CLASSIFIER_CACHE_KEEP = 8
# A light L2 penalty; on standardised vectors 1e-3 and 1e-4 route BANKING77
# alike (88.0 % and 87.9 % alone). Without standardising, 1e-3 cost 7 points
# on CLINC150.
CLASSIFIER_L2 = 1e-3
# Additive smoothing of word counts. 0.1 beat 1.0 by 4.5 points alone and 0.7
# in the mix on BANKING77: rare words are the telling ones.
WORDS_SMOOTHING = 0.1

# Confidence = logistic(bias + score * a + lead * b + p_softmax * c + p_words * d),
# fitted by `scripts/fit_confidence.py` (maximum likelihood, numpy Newton steps)
# on questions that are no article's examples: CLINC150 val in scope and
# oos_train out of scope with CLINC150 train as articles, and BANKING77 held-out
# questions in scope with CLINC150 oos_train and other-domain train questions
# out of scope with the demo knowledge base. The label is "the top article is the right
# one", so an out-of-scope question counts as wrong whatever it matched.
CONFIDENCE_WITH_CLASSIFIER = (-5.88, 5.68, 1.99, 2.81, 1.66)
# The same fit for indexes too large for the classifier (its weight is 0).
CONFIDENCE_WITHOUT_CLASSIFIER = (-5.11, 6.74, 10.88, 0.0, -0.66)

_WORDS = re.compile(r"[\w']+")
# Words that point back to something said earlier.
_BACK_REFERENCE = re.compile(r"\b(it|that|this|these|those|they|them|one)\b")
# "Is it possible to ...?" is in about one BANKING77 question in 100, and its
# "it" refers to nothing; without this exception those questions were blended with an
# unrelated previous turn and routed wrongly.
_DUMMY_IT = re.compile(r"\bit (is )?possible\b")
# Openings that continue the previous turn ("and what about ...").
_CONTINUATION = re.compile(r"^(and|also|but|so|then|what about|how about)\b")


@dataclass(frozen=True)
class ArticleDoc:
    id: int
    title: str
    body: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    article_id: int
    title: str
    # Cosine similarity in [-1, 1]; see the module docstring for its make-up.
    score: float
    # Probability in [0, 1] that this article is the one that answers the
    # question (see CONFIDENCE_WITH_CLASSIFIER). The best hit has the highest.
    confidence: float = 0.0


def looks_like_follow_up(query: str) -> bool:
    """Whether `query` probably leans on the previous turn for its topic.

    The rule is deliberately narrow: short (at most FOLLOW_UP_MAX_WORDS words) and
    either pointing back (it, that, this, ...) or opening as a continuation (and,
    what about, ...). On BANKING77's held-out questions, each paired with the
    previous turn of a different intent, it fires on 2.5 % of them and costs
    0.3 points of accuracy (87.5 % to 87.2 %), while it fires on 23 of 24
    hand-written follow-ups and lifts their routing from 33 % to 88 %. Blending
    every query with its context instead drops self-contained accuracy to 71 %.
    """
    words = _WORDS.findall(query.lower())
    if not words or len(words) > FOLLOW_UP_MAX_WORDS:
        return False
    text = " ".join(words)
    if _CONTINUATION.match(text):
        return True
    return bool(_BACK_REFERENCE.search(_DUMMY_IT.sub(" ", text)))


def _lead(body: str) -> str:
    """The body's first paragraph, cut to LEAD_CHARS at a word boundary."""
    paragraph = body.strip().split("\n\n", 1)[0].strip()
    if len(paragraph) <= LEAD_CHARS:
        return paragraph
    cut = paragraph[:LEAD_CHARS]
    space = cut.rfind(" ")
    return cut[:space] if space > 0 else cut


def _normalise(text: str) -> str:
    # The tokenizer is case-sensitive and customers are not: with cased text, a
    # BANKING77 question typed in capitals was routed right 41 % of the time
    # instead of 87 %. Lower-casing both sides costs at most 0.3 points on
    # ordinary text.
    return " ".join(text.lower().split())


Matrix = npt.NDArray[np.float32]


def _prune(folder: Path) -> None:
    """Keep the CLASSIFIER_CACHE_KEEP most recently used classifiers."""
    files = sorted(
        folder.glob("classifier-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in files[CLASSIFIER_CACHE_KEEP:]:
        old.unlink(missing_ok=True)


def _softmax(logits: Matrix) -> Matrix:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: Matrix = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


class _SoftmaxClassifier:
    """Multinomial logistic regression over standardised embedding vectors."""

    def __init__(self, mean: Matrix, scale: Matrix, weights: Matrix, bias: Matrix):
        self._mean = mean
        self._scale = scale
        self._weights = weights
        self._bias = bias

    @classmethod
    def train(
        cls, vectors: Matrix, labels: npt.NDArray[np.intp], classes: int
    ) -> _SoftmaxClassifier:
        """Nesterov-accelerated gradient descent on the L2-penalised loss.

        Standardising each dimension first matters: the embeddings share a
        common direction, and on raw vectors the same number of steps left
        the loss far from its minimum (two points less accuracy).
        """
        mean = vectors.mean(axis=0)
        scale = vectors.std(axis=0) + np.float32(1e-6)
        x = (vectors - mean) / scale
        n = len(x)
        targets = np.zeros((n, classes), dtype=np.float32)
        targets[np.arange(n), labels] = 1.0
        l2 = np.float32(CLASSIFIER_L2)
        # 1 / Lipschitz constant of the gradient: the loss's curvature is at
        # most half the largest eigenvalue of the (scaled) Gram matrix.
        curvature = 0.5 * float(np.linalg.eigvalsh(x.T @ x / n).max()) + CLASSIFIER_L2
        step = np.float32(1.0 / curvature)
        weights = np.zeros((classes, x.shape[1]), dtype=np.float32)
        bias = np.zeros(classes, dtype=np.float32)
        look_w, look_b, t = weights.copy(), bias.copy(), 1.0
        for _ in range(CLASSIFIER_STEPS):
            error = (_softmax(x @ look_w.T + look_b) - targets) / np.float32(n)
            new_w = look_w - step * (error.T @ x + l2 * look_w)
            new_b = look_b - step * error.sum(axis=0)
            t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
            momentum = np.float32((t - 1.0) / t_next)
            look_w = new_w + momentum * (new_w - weights)
            look_b = new_b + momentum * (new_b - bias)
            weights, bias, t = new_w, new_b, t_next
        return cls(mean, scale, weights, bias)

    @classmethod
    def cached(
        cls,
        vectors: Matrix,
        labels: npt.NDArray[np.intp],
        classes: int,
        folder: Path | None,
    ) -> _SoftmaxClassifier:
        """`train`, or the same training's result read from `folder`.

        The file is named by a hash of everything training depends on, so a
        file that exists holds the answer; one that cannot be read is trained
        again and replaced. Files are written whole and renamed into place,
        so processes sharing the folder never read half a file.
        """
        if folder is None:
            return cls.train(vectors, labels, classes)
        digest = hashlib.sha256()
        digest.update(repr((vectors.shape, classes, CLASSIFIER_STEPS)).encode())
        digest.update(repr(CLASSIFIER_L2).encode())
        digest.update(np.ascontiguousarray(vectors).tobytes())
        digest.update(labels.astype(np.int64).tobytes())
        path = folder / f"classifier-{digest.hexdigest()[:40]}.npz"
        try:
            with np.load(path, allow_pickle=False) as saved:
                found = cls(*(saved[k] for k in ("mean", "scale", "weights", "bias")))
            os.utime(path)  # recently used: kept by the pruning below
            return found
        except FileNotFoundError:
            pass
        except (OSError, KeyError, ValueError) as error:
            logger.warning("Retraining: cached classifier unreadable (%s)", error)
        trained = cls.train(vectors, labels, classes)
        try:
            trained._save(path)
            _prune(folder)
        except OSError as error:
            logger.warning("Trained classifier not cached (%s)", error)
        return trained

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, suffix=".tmp", delete=False
        ) as out:
            np.savez(
                out,
                mean=self._mean,
                scale=self._scale,
                weights=self._weights,
                bias=self._bias,
            )
        os.replace(out.name, path)

    def probabilities(self, vectors: Matrix) -> Matrix:
        x: Matrix = (vectors - self._mean) / self._scale
        logits: Matrix = x @ self._weights.T + self._bias
        return _softmax(logits)


def _word_features(text: str) -> list[str]:
    """Lower-cased words and adjacent word pairs: "card", "card arrive"."""
    words = _WORDS.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


class _WordModel:
    """Multinomial naive Bayes over words and word pairs, with a uniform prior
    (how many questions an article has says nothing about how often it is
    asked for).

    Stored sparsely: a feature's log-probability under an article differs from
    the article's unseen-feature value only where the article used it, so a
    knowledge base of 10,000 articles costs one entry per (article, feature)
    seen rather than a dense articles x vocabulary matrix.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], classes: int):
        counts: dict[str, dict[int, int]] = {}
        totals = np.zeros(classes, dtype=np.float64)
        for text, label in zip(texts, labels, strict=True):
            for feature in _word_features(text):
                per_class = counts.setdefault(feature, {})
                per_class[label] = per_class.get(label, 0) + 1
                totals[label] += 1
        alpha = WORDS_SMOOTHING
        denominators = np.log(totals + alpha * max(1, len(counts)))
        self._unseen = (np.log(alpha) - denominators).astype(np.float32)
        self._seen: dict[str, tuple[npt.NDArray[np.intp], Matrix]] = {}
        for feature, per_class in counts.items():
            owners = np.fromiter(per_class, dtype=np.intp, count=len(per_class))
            n = np.fromiter(per_class.values(), dtype=np.float64, count=len(owners))
            lift = (np.log(n + alpha) - np.log(alpha)).astype(np.float32)
            self._seen[feature] = (owners, lift)

    def probabilities(
        self, weighted_texts: Sequence[Sequence[tuple[str, float]]]
    ) -> Matrix:
        """One row per query; a query is texts with weights (a follow-up's own
        words count fully, its context's at CONTEXT_WEIGHT)."""
        log_likelihood = np.zeros((len(weighted_texts), len(self._unseen)), np.float32)
        for row, texts in enumerate(weighted_texts):
            for text, weight in texts:
                for feature in _word_features(text):
                    seen = self._seen.get(feature)
                    # A feature no article used moves every article equally.
                    if seen is None:
                        continue
                    log_likelihood[row] += np.float32(weight) * self._unseen
                    owners, lift = seen
                    log_likelihood[row, owners] += np.float32(weight) * lift
        return _softmax(log_likelihood)


@dataclass(frozen=True)
class Ranking:
    """Every article's signals for a batch of queries: arrays of shape
    (queries, articles), in article order."""

    score: Matrix
    classifier: Matrix
    words: Matrix
    rank: Matrix
    confidence: Matrix


def _confidence(
    ranking_inputs: tuple[Matrix, Matrix, Matrix, Matrix], with_classifier: bool
) -> Matrix:
    score, classifier, words, rank = ranking_inputs
    bias, a, b, c, d = (
        CONFIDENCE_WITH_CLASSIFIER if with_classifier else CONFIDENCE_WITHOUT_CLASSIFIER
    )
    # Each article's lead over the best other one: positive for the top
    # article only, so the runners-up get low confidence.
    if rank.shape[-1] > 1:
        top_two = np.partition(rank, -2, axis=-1)[..., -2:]
        best_other = np.where(
            rank >= top_two[..., 1:], top_two[..., :1], top_two[..., 1:]
        )
    else:
        best_other = np.zeros_like(rank)
    z = bias + a * score + b * (rank - best_other) + c * classifier + d * words
    confidence: Matrix = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return confidence


class ArticleIndex:
    """An immutable in-memory index; safe to search from many threads at once."""

    def __init__(
        self,
        ids: Sequence[int],
        titles: Sequence[str],
        vectors: npt.NDArray[np.float32],
        starts: npt.NDArray[np.intp],
        centroid_weight: float = CENTROID_WEIGHT,
        *,
        texts: Sequence[str] | None = None,
        classifier: bool = True,
        classifier_cache: Path | None = None,
    ) -> None:
        """Prefer `build`. `vectors` holds each article's rows contiguously, in
        article order, and `starts[i]` is the first row of article i. `texts`
        are the rows' texts, for the word model; without them (or with
        `classifier=False`) the index ranks by similarity alone."""
        if len(ids) != len(titles) or len(ids) != len(starts):
            raise ValueError("ids, titles and starts must have one entry per article")
        self._ids = list(ids)
        self._titles = list(titles)
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._starts = np.asarray(starts, dtype=np.intp)
        self._centroid_weight = float(centroid_weight)
        self._classifier: _SoftmaxClassifier | None = None
        self._words: _WordModel | None = None
        if len(self._ids):
            # Segment sums need the owner of every row to be non-empty and in
            # order; `build` guarantees it, a hand-made index must too.
            counts = np.diff(np.append(self._starts, len(self._vectors)))
            if self._starts[0] != 0 or (counts <= 0).any():
                raise ValueError("every article needs at least one vector")
            sums = np.add.reduceat(self._vectors, self._starts, axis=0)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            self._centroids = np.divide(
                sums, norms, out=np.zeros_like(sums), where=norms > 0
            )
            labels = np.repeat(np.arange(len(self._ids)), counts)
            self._train(labels, texts, classifier, classifier_cache)
        else:
            self._centroids = np.zeros((0, DIM), dtype=np.float32)
        for array in (self._vectors, self._starts, self._centroids):
            array.flags.writeable = False

    def _train(
        self,
        labels: npt.NDArray[np.intp],
        texts: Sequence[str] | None,
        classifier: bool,
        cache: Path | None,
    ) -> None:
        articles = len(self._ids)
        # One article needs no classifier: its probability is always 1.
        if not classifier or articles < 2:
            return
        if texts is not None:
            self._words = _WordModel(texts, labels.tolist(), articles)
        if len(self._vectors) * articles <= CLASSIFIER_MAX_CELLS:
            self._classifier = _SoftmaxClassifier.cached(
                self._vectors, labels, articles, cache
            )

    @property
    def has_classifier(self) -> bool:
        """Whether softmax regression was trained (see CLASSIFIER_MAX_CELLS)."""
        return self._classifier is not None

    @classmethod
    def build(
        cls,
        docs: Sequence[ArticleDoc],
        *,
        centroid_weight: float = CENTROID_WEIGHT,
        use_body_lead: bool = True,
        classifier: bool = True,
        classifier_cache: Path | None = None,
    ) -> ArticleIndex:
        """Embed every article's title, example questions and body lead, and
        train the classifiers on them (`classifier=False` skips that).

        Training the softmax classifier is most of the build (a second or
        more). With `classifier_cache`, a folder, a classifier trained on the
        same vectors is read from there instead, and one trained here is kept
        there: every web process builds the same index after each change to the
        articles, and the first one trains it for the others.

        Raises ValueError if two documents share an id: hits are per article id,
        and two documents under one id would make that ambiguous.
        """
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            raise ValueError("article ids must be unique")
        texts: list[str] = []
        starts: list[int] = []
        for doc in docs:
            starts.append(len(texts))
            # The title always gets a row (even an empty one, which embeds to
            # zeros) so that every article owns at least one row.
            own = [_normalise(doc.title)]
            own.extend(_normalise(q) for q in doc.questions)
            if use_body_lead:
                own.append(_normalise(_lead(doc.body)))
            # Blank and repeated texts add nothing but rows to scan.
            texts.append(own[0])
            seen = {own[0]}
            for text in own[1:]:
                if text and text not in seen:
                    seen.add(text)
                    texts.append(text)
        return cls(
            ids,
            [d.title for d in docs],
            embed(texts),
            np.array(starts, dtype=np.intp),
            centroid_weight=centroid_weight,
            texts=texts,
            classifier=classifier,
            classifier_cache=classifier_cache,
        )

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[int]:
        """Article ids in article order (the columns of a `Ranking`)."""
        return list(self._ids)

    @property
    def vector_count(self) -> int:
        return int(self._vectors.shape[0])

    def search(self, query: str, k: int = 3, context: str | None = None) -> list[Hit]:
        """The `k` best articles for `query`, best first.

        `context` is the customer's previous turn. It is used only when the query
        looks like a follow-up (see `looks_like_follow_up`), so a self-contained
        question is never pulled towards the earlier topic. A blank query finds
        nothing.
        """
        if not self._ids or k <= 0 or not query.strip():
            return []
        return self.hits(self.rank([query], [context]), 0, k)

    def search_vector(self, vector: npt.NDArray[np.float32], k: int = 3) -> list[Hit]:
        """Like `search`, for a query already turned into a vector by
        `query_vector`; the word model, which needs the text, is left out."""
        if not self._ids or k <= 0:
            return []
        return self.hits(self._rank_vectors(vector[None, :], None), 0, k)

    def rank(
        self, queries: Sequence[str], contexts: Sequence[str | None] | None = None
    ) -> Ranking:
        """All signals for a batch of queries (the evaluation's entry point;
        `search` is this for one query). `contexts[i]` is query i's previous
        turn, used as in `search`."""
        contexts = contexts if contexts is not None else [None] * len(queries)
        follow_ups = [
            bool(c and c.strip() and looks_like_follow_up(q))
            for q, c in zip(queries, contexts, strict=True)
        ]
        vectors = embed([_normalise(q) for q in queries])
        if any(follow_ups):
            vectors[follow_ups] = np.stack(
                [
                    query_vector(q, c)
                    for q, c, f in zip(queries, contexts, follow_ups, strict=True)
                    if f
                ]
            )
        weighted = [
            [(q, 1.0), (c or "", CONTEXT_WEIGHT)] if f else [(q, 1.0)]
            for q, c, f in zip(queries, contexts, follow_ups, strict=True)
        ]
        return self._rank_vectors(vectors, weighted)

    def _rank_vectors(
        self, vectors: Matrix, weighted: Sequence[Sequence[tuple[str, float]]] | None
    ) -> Ranking:
        score = self.scores(vectors)
        classifier = np.zeros_like(score)
        words = np.zeros_like(score)
        if self._classifier is not None:
            classifier = self._classifier.probabilities(vectors)
        if self._words is not None and weighted is not None:
            words = self._words.probabilities(weighted)
        rank = score + CLASSIFIER_WEIGHT * classifier + WORDS_WEIGHT * words
        confidence = _confidence(
            (score, classifier, words, rank), self._classifier is not None
        )
        return Ranking(score, classifier, words, rank, confidence)

    def hits(self, ranking: Ranking, row: int, k: int) -> list[Hit]:
        """The `k` best hits of query `row` of `ranking`, best rank first."""
        rank = ranking.rank[row]
        confidence = ranking.confidence[row]
        k = min(k, len(rank))
        if k <= 0:
            return []
        if k < len(rank):
            top = np.argpartition(-rank, k - 1)[:k]
        else:
            top = np.arange(len(rank))
        # Stable sort: equal ranks keep index (article) order.
        top = top[np.argsort(-rank[top], kind="stable")]
        score = ranking.score[row]
        # float32 rounding can put a perfect match a hair above 1.
        return [
            Hit(
                self._ids[i],
                self._titles[i],
                min(1.0, max(-1.0, float(score[i]))),
                min(1.0, max(0.0, float(confidence[i]))),
            )
            for i in top.tolist()
        ]

    def scores(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Every article's similarity score, in article order, for one query
        vector (giving shape (articles,)) or a matrix of them (giving
        (queries, articles))."""
        if not self._ids:
            return np.zeros((*vectors.shape[:-1], 0), dtype=np.float32)
        # For one query this is a matrix-vector product over every row: the
        # whole cost of a search (~4 ms for 70,000 rows on two cores).
        sims = (
            self._vectors @ vectors if vectors.ndim == 1 else vectors @ self._vectors.T
        )
        # Best row per article in one vectorised pass over contiguous segments.
        nearest: npt.NDArray[np.float32] = np.maximum.reduceat(
            sims, self._starts, axis=-1
        )
        w = self._centroid_weight
        if w == 0:
            return nearest
        scores: npt.NDArray[np.float32] = (1.0 - w) * nearest + w * (
            vectors @ self._centroids.T
        )
        return scores


def query_vector(query: str, context: str | None = None) -> npt.NDArray[np.float32]:
    """The unit vector `ArticleIndex.search` looks up for `query`.

    For a follow-up, the previous turn is added at CONTEXT_WEIGHT so the vector
    lands near the earlier topic while keeping what the follow-up asks about
    ("how long", "how much"); otherwise `context` is ignored.
    """
    if context and context.strip() and looks_like_follow_up(query):
        pair = embed([_normalise(query), _normalise(context)])
        vector: npt.NDArray[np.float32] = pair[0] + np.float32(CONTEXT_WEIGHT) * pair[1]
        norm = np.linalg.norm(vector)
        if norm > 0:
            vector /= norm
    else:
        vector = embed([_normalise(query)])[0]
    return vector
