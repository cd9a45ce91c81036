import os

# Retrieval multiplies one query vector by the article matrix: BLAS threads
# only contend with the web server's own work. Measured in `make bench`: CPU
# per answer fell from 107 to 44 ms with one thread. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The same for the tokenizer of the embeddings: its thread pool splits a batch
# of a few short texts across cores, then its threads spin waiting for more
# (sched_yield and futex calls by the hundred per answer in `make bench`).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .celery import app as celery_app

__all__ = ["celery_app"]
