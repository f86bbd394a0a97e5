"""``st-search-r3 demo``: search the shipped WordNet sample with search-r3 and faiss, showing the reasoning."""

from __future__ import annotations

import time

import faiss
import numpy as np
from sentence_transformers import SentenceTransformer

from st_search_r3.data.demo import demo_split
from st_search_r3.install import install


def run_demo(num_queries: int = 5, top_k: int = 3, reasoning: bool | None = None) -> None:
    """Indexes the shipped WordNet sample and searches it with a few of its definitions.

    Args:
        num_queries: Definitions searched.
        top_k: Hits shown per query.
        reasoning: Reason before embedding the queries (default: the installed model's setting, off for the
            shipped search-r3, whose vectors are better without). Either way the reasoning is shown.
    """
    model = SentenceTransformer(str(install()), trust_remote_code=True)
    split = demo_split()
    document_ids = list(split.corpus)
    print(f"\nIndexing {len(document_ids)} WordNet 3.0 synsets (one forward pass each, no reasoning) ...")
    start = time.perf_counter()
    vectors = model.encode_document([split.corpus[i] for i in document_ids], batch_size=32, show_progress_bar=True)
    print(f"  {len(document_ids) / (time.perf_counter() - start):.1f} documents/s")
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(vectors.astype(np.float32), np.arange(len(document_ids), dtype=np.int64))

    query_ids = list(split.queries)[:num_queries]
    queries = [split.queries[i] for i in query_ids]
    reasoning = model[0].reasoning if reasoning is None else reasoning
    how = "reasoning first" if reasoning else "without reasoning (the shipped default)"
    print(f"Embedding {len(queries)} definitions at <|embed_token|>, {how} ...")
    start = time.perf_counter()
    query_vectors = model.encode_query(queries, batch_size=len(queries), reasoning=reasoning)
    print(f"  {len(queries) / (time.perf_counter() - start):.2f} queries/s")
    if not reasoning:
        print("What the model would reason with reasoning=True (not used for these vectors):")
    reasoning = model[0].reasoning_of(queries)  # after reasoning encode_query: remembered, no second generation
    traces = model[0].reasoning_traces(queries)
    scores, hits = index.search(query_vectors.astype(np.float32), top_k)

    found = 0
    for query_id, query, thought, trace, row_scores, row_hits in zip(
        query_ids, queries, reasoning, traces, scores, hits
    ):
        relevant = set(split.qrels[query_id])
        ending = "wrote <|embed_token|>" if trace.stop_token_id == model[0].embed_token_id else "token appended"
        print(f"\nQuery:     {query}")
        print(f"Reasoning: {thought[:300]!r} ({len(trace.token_ids)} tokens, {ending})")
        for score, hit in zip(row_scores, row_hits):
            mark = "*" if document_ids[hit] in relevant else " "
            print(f"  {mark} {score:.3f}  {split.corpus[document_ids[hit]][:100]}")
        found += any(document_ids[hit] in relevant for hit in row_hits)
    print(f"\nThe right synset (*) is in the top {top_k} for {found} of {len(queries)} queries.")
