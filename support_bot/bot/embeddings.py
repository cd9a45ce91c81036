"""Sentence embeddings and token counts, computed fully offline.

The model is WordLlama ("l2_supercat", 256 dimensions). It was chosen because its
weights (~16 MB) and tokenizer ship inside the PyPI wheel, so a fresh install works
on a machine with no network and no model download step; it needs no PyTorch, only
numpy and the `tokenizers` library; and a sentence embedding is an average of token
vectors, so embedding a query costs well under a millisecond on one CPU core. It is
far weaker than a transformer encoder, which is why retrieval compares queries with
example questions rather than with whole article bodies.

The tokenizer is LLaMA-2's; counting tokens with it gives a prompt budget that is
close to, though not exactly, what a hosted LLM will bill.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DIM", "count_tokens", "embed"]

DIM = 256
_CONFIG = "l2_supercat"
# Texts per tokenizer call. Batches are padded to their longest member, so the
# batches are cut from length-sorted texts (see `embed`) and need not be small.
_BATCH_SIZE = 256
# Lists of up to this many texts are embedded text by text through a cache of
# the CACHED_TEXTS most recent (1 KiB of vector each).
CACHED_BATCH = 8
CACHED_TEXTS = 4096

_lock = threading.Lock()
_model: Any = None


def _import_wordllama() -> Any:
    """Import wordllama without letting it reconfigure the process's logging.

    Both `wordllama/__init__.py` and `wordllama/inference.py` call
    `logging.basicConfig(level=logging.INFO)` at import time. When the root logger
    has no handler yet (a worker that imports this module before configuring
    logging), that would attach a stderr handler at INFO to the root logger and
    make every library in the process chatty. `basicConfig` is a no-op when the
    root logger already has a handler, so one is held there for the import only.
    """
    root = logging.getLogger()
    placeholder: logging.Handler | None = None
    if not root.handlers:
        placeholder = logging.NullHandler()
        root.addHandler(placeholder)
    try:
        import wordllama
    finally:
        if placeholder is not None:
            root.removeHandler(placeholder)
    return wordllama


def _load() -> Any:
    """Return the process-wide model, loading it on first use.

    Loading reads ~18 MB from disk and takes about half a second, so it is done
    lazily (importing this module stays free) and exactly once: the lock makes
    concurrent first callers wait for one load instead of each doing their own.
    """
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            wordllama = _import_wordllama()
            package_dir = Path(wordllama.__file__).parent
            # In 0.4.0.post1 the loader looks for the bundled tokenizer in
            # `<package>/tokenizer/` (singular) but the wheel installs it in
            # `<package>/tokenizers/`, then falls back to `<cache_dir>/tokenizers/`.
            # Naming the package directory as the cache directory makes that
            # fallback find the bundled file (and the weights, which it finds
            # anyway). With downloads disabled a missing file raises instead of
            # reaching for Hugging Face.
            _model = wordllama.WordLlama.load(
                config=_CONFIG,
                dim=DIM,
                cache_dir=package_dir,
                disable_download=True,
            )
    return _model


def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed texts as the rows of a float32 matrix of shape (len(texts), DIM).

    Rows have unit L2 norm, so a dot product is a cosine similarity. A text with
    no tokens (empty or whitespace) gets an all-zero row rather than NaNs: it is
    then equally dissimilar (0.0) to everything.
    """
    if isinstance(texts, str):
        # A bare string is a Sequence[str] too; embedding it character by
        # character is never what the caller meant.
        raise TypeError("embed() takes a sequence of strings, not a string")
    if 0 < len(texts) <= CACHED_BATCH:
        # A question is embedded by retrieval and by more than one signal,
        # and guideline topics with every question: short lists come from
        # the cache, text by text.
        return np.stack([_embed_one(text) for text in texts])
    return _embed_batch(texts)


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _embed_one(text: str) -> npt.NDArray[np.float32]:
    vector: npt.NDArray[np.float32] = _embed_batch([text])[0]
    vector.flags.writeable = False
    return vector


def _embed_batch(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    if not texts:
        return out
    model = _load()
    # Sorting by length keeps each padded batch tight, which matters when a
    # whole knowledge base is embedded at once.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), _BATCH_SIZE):
        rows = order[start : start + _BATCH_SIZE]
        # norm=False: the library divides by the norm unguarded, which turns an
        # empty text into NaNs; normalising here handles zero norms.
        pooled = model.embed(
            [texts[i] for i in rows], norm=False, batch_size=_BATCH_SIZE
        )
        out[rows] = pooled
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def count_tokens(text: str) -> int:
    """Number of LLaMA-2 tokens in `text`, without special tokens; 0 for ""."""
    if not text:
        return 0
    # A single `encode` is unpadded even though the model enables padding on this
    # tokenizer: padding only lengthens the shorter members of a batch.
    return len(_load().tokenizer.encode(text, add_special_tokens=False).ids)
