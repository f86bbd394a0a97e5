"""Reasoning that reads: a query's second vector, after the model has read what its first search found.

A first search with the query's direct vector finds the top ``k`` documents. The model then reads the query and
the heads of those passages in one prompt and ``<|embed_token|>`` gives the query's second vector, which searches
the whole corpus again. This is pseudo-relevance feedback learned by the LLM (ANCE-PRF, arXiv 2108.13454, reads
the top 3 the same way): the words the query lacks are in the corpus, not in a 135M model.

The read prompt::

    chat(system=reading_prompt,
         user="<query>\\n\\nPassages found by a first search:\\n[1] <head of passage 1>\\n[2] <head of passage 2>...")
    + "The embedding is <|embed_token|>"

Only the query side changes: documents and direct query vectors are the model's own, so an index stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.util import semantic_search

from st_search_r3.embedding import fuse
from st_search_r3.prompting import PromptBuilder

READING_PROMPT = (
    "You are a search expert. Read the query and the passages a first search found for it. Represent the query "
    "for a second search: keep what the query asks, and take the words of the passage that answers it."
)
PASSAGES_HEADER = "\n\nPassages found by a first search:"


def read_prompt_ids(
    prompts: PromptBuilder,
    query: str,
    passages: Sequence[str],
    system_prompt: str,
    passage_tokens: int,
    reserve: int,
) -> list[int]:
    """Token ids of the read prompt, ending at the start of the assistant turn.

    The query is cut as a direct query is (its prompt alone fits ``prompts.max_seq_length``); each passage is cut
    to its first ``passage_tokens`` tokens on top of that, so reading ``k`` passages adds at most
    ``k * (passage_tokens + 4)`` tokens to the query's prompt.

    Args:
        prompts: The module's prompt builder.
        query: The query text.
        passages: The first search's documents, best first (any number, none included).
        system_prompt: The reading system prompt.
        passage_tokens: Tokens kept of each passage.
        reserve: Tokens kept free for the answer after the prompt.
    """
    before, after = prompts.template(system_prompt)
    query_ids = prompts.prompt_ids(query, system_prompt, reserve=reserve)[len(before) : -len(after) or None]
    read = list(query_ids)
    if passages:
        read += prompts.encode(PASSAGES_HEADER)
        for number, passage in enumerate(passages, start=1):
            read += prompts.encode(f"\n[{number}] ") + prompts.encode_text(passage, passage_tokens)
    return before + read + after


def rocchio(queries: torch.Tensor, documents: torch.Tensor, k: int, beta: float) -> torch.Tensor:
    """Untrained vector pseudo-relevance feedback (Rocchio; arXiv 2108.11044), the baseline reading must beat: each
    normalised query vector plus ``beta`` times the mean of its first search's top ``k`` (normalised) document
    vectors, normalised."""
    queries, documents = F.normalize(queries.float(), dim=-1), F.normalize(documents.float(), dim=-1)
    top = (queries @ documents.T).topk(min(k, len(documents)), dim=1).indices
    return F.normalize(queries + beta * documents[top].mean(dim=1), dim=-1)


def _as_corpus_tensor(corpus_embeddings, size: int, dimension: int) -> torch.Tensor:
    """``corpus_embeddings`` (numpy or torch, normalised or not) as normalised float32 rows, shape checked."""
    vectors = torch.as_tensor(
        np.asarray(corpus_embeddings) if not torch.is_tensor(corpus_embeddings) else corpus_embeddings
    )
    if vectors.shape != (size, dimension):
        raise ValueError(
            f"corpus_embeddings has shape {tuple(vectors.shape)}, expected ({size}, {dimension}): one row per "
            "document, as encode_document returns them"
        )
    return F.normalize(vectors.float().cpu(), dim=-1)


def search(
    module,
    queries: Sequence[str],
    corpus: Sequence[str],
    top_k: int = 10,
    corpus_embeddings=None,
    reading: bool = True,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    lexical_weight: float = 0.0,
) -> list[list[dict[str, int | float]]]:
    """Both passes of reasoning that reads (see :meth:`st_search_r3.module.SearchR3.search`)."""
    for name, texts in (("queries", queries), ("corpus", corpus)):
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{name} must be a list of strings")
        if len(texts) == 0:
            raise ValueError(f"{name} is empty")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if isinstance(lexical_weight, bool) or not isinstance(lexical_weight, (int, float)) or not lexical_weight >= 0:
        raise ValueError(f"lexical_weight must be a number >= 0, got {lexical_weight!r}")
    dimension = module.get_embedding_dimension()
    if corpus_embeddings is None:
        corpus_embeddings = module.embed(
            list(corpus), task="document", batch_size=batch_size, show_progress_bar=show_progress_bar
        )
    documents = _as_corpus_tensor(corpus_embeddings, len(corpus), dimension)
    direct = module.embed(list(queries), task="query", reasoning=False, batch_size=batch_size)
    index = None
    if lexical_weight > 0:
        from st_search_r3.lexical import LexicalIndex

        index = LexicalIndex(corpus)
    ranked = partial(_ranked, documents=documents, queries=queries, index=index, lexical_weight=lexical_weight)
    if not reading:
        return ranked(direct, top_k=min(top_k, len(corpus)))
    first = ranked(direct, top_k=min(module.read_top_k, len(corpus)))
    inputs = [(query, [corpus[hit["corpus_id"]] for hit in hits]) for query, hits in zip(queries, first)]
    read = module.embed(
        inputs, task="query", batch_size=batch_size, show_progress_bar=show_progress_bar, read_fuse_direct=False
    )
    if module.read_fuse_direct:  # the direct vectors are at hand: fused here, not computed again
        read = F.normalize(fuse(read, direct), dim=-1)
    return ranked(read, top_k=min(top_k, len(corpus)))


def _ranked(vectors, documents, queries, index, lexical_weight, top_k, chunk: int = 256):
    """The ``top_k`` documents of each query by the vectors' cosines, plus BM25 where ``lexical_weight`` > 0
    (:func:`st_search_r3.lexical.hybrid_scores`, ``index`` being the corpus's :class:`LexicalIndex`), over the whole
    corpus, ``chunk`` queries at a time."""
    if lexical_weight == 0:
        return semantic_search(vectors, documents, top_k=top_k)
    from st_search_r3.lexical import hybrid_scores

    vectors, hits = F.normalize(vectors.float(), dim=-1), []
    for start in range(0, len(queries), chunk):
        cosine = vectors[start : start + chunk] @ documents.T
        scores = hybrid_scores(cosine, index.scores(queries[start : start + chunk]), lexical_weight)
        best = scores.topk(top_k, dim=1)
        hits += [
            [{"corpus_id": i, "score": s} for i, s in zip(ids, values)]
            for ids, values in zip(best.indices.tolist(), best.values.tolist())
        ]
    return hits
