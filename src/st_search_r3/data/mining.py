"""Hard negatives for training, mined with a guide encoder and filtered for false negatives."""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from st_search_r3.data.retrieval_split import RetrievalSplit


def mine_hard_negatives(
    split: RetrievalSplit,
    guide,
    top_k: int = 30,
    max_relative_score: float = 0.95,
    batch_size: int = 128,
    show_progress_bar: bool = True,
    seed: int = 0,
) -> Dataset:
    """One ``(anchor, positive, negative, query_id, negative_id)`` row per query of ``split``.

    The rule is ``sentence_transformers.util.mine_hard_negatives(range_max=30, relative_margin=0.05,
    sampling_strategy="top")``'s (tests/test_mining.py: the same negative for every fixture query). It is kept
    here because the library's returns texts without the ids a training draw is pinned by
    (:mod:`st_search_r3.training.recipe`), and drops a query that has no candidate instead of giving it a
    random negative, so switching would change the built training sets the shipped recipe pins.

    The negative is the document the guide ranks highest for the query among its ``top_k`` that is not
    relevant and scores below ``max_relative_score`` times the positive's score: a near-tie with the
    positive is more likely an unlabelled match (a false negative) than a useful negative. Queries
    without such a candidate get a random other document of the split.

    Args:
        split: The training split; negatives come from its own corpus only.
        guide: A sentence-transformers model (all-MiniLM-L6-v2 in this project).
    """
    document_ids = list(split.corpus)
    query_ids = [q for q in split.queries if split.qrels.get(q)]
    documents = guide.encode(
        [split.corpus[d] for d in document_ids],
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=show_progress_bar,
    )
    queries = guide.encode(
        [split.queries[q] for q in query_ids],
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=show_progress_bar,
    )
    position = {d: i for i, d in enumerate(document_ids)}
    rng = np.random.default_rng(seed)
    rows = {"anchor": [], "positive": [], "negative": [], "query_id": [], "negative_id": []}
    for start in range(0, len(query_ids), 1024):
        scores = queries[start : start + 1024] @ documents.T
        candidates = np.argsort(-scores, axis=1)[:, :top_k]
        for offset, query_id in enumerate(query_ids[start : start + 1024]):
            relevant = split.qrels[query_id]
            positive_id = max(relevant, key=relevant.get)
            ceiling = max_relative_score * scores[offset, position[positive_id]]
            negative = next(
                (
                    document_ids[c]
                    for c in candidates[offset]
                    if document_ids[c] not in relevant and scores[offset, c] < ceiling
                ),
                None,
            )
            if negative is None:
                others = [d for d in document_ids if d not in relevant]
                if not others:
                    continue
                negative = others[rng.integers(len(others))]
            rows["anchor"].append(split.queries[query_id])
            rows["positive"].append(split.corpus[positive_id])
            rows["negative"].append(split.corpus[negative])
            rows["query_id"].append(query_id)
            rows["negative_id"].append(negative)
    return Dataset.from_dict(rows)
