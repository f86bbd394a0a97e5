"""Dev probe: does a fluent reasoning help the shipped embedder when fused with the direct view?

The shipped stage-1 adapter embeds; the base LLM (adapters off) writes each query's reasoning (greedy,
24 tokens, repetition guard 3, first sentence kept, as best-of-n training candidates are cut). Per task:
nDCG@10 of the direct query vector (reasoning off), the fused vector (``fuse_direct_embedding``) and the
reasoning view alone, on the first ``--queries`` dev queries (seed 0) and the whole dev corpus.

    python benchmarks/base_writer_probe.py --queries 100
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from st_search_r3.install import SHIPPED_WEIGHTS
from st_search_r3.module import SearchR3
from st_search_r3.training.sft_data import first_sentences

sys.path.insert(0, str(Path(__file__).parent))
from reasoning_report import load_task, mean_ndcg_at_10  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def view_scores(model: SentenceTransformer, queries, written, documents, relevant) -> dict[str, float]:
    """nDCG@10 (in %) of the queries embedded off, fused with the given reasonings, and the reasoning view alone."""
    module = model[0]
    pairs = list(zip(queries, written))
    vectors = {"off": model.encode_query(queries, batch_size=16, reasoning=False)}
    for fused in (True, False):
        module.fuse_direct_embedding = fused
        vectors["fused" if fused else "reasoning view alone"] = model.encode_query(pairs, batch_size=16)
    return {k: 100 * mean_ndcg_at_10(v, documents, relevant) for k, v in vectors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    module = SearchR3(str(SHIPPED_WEIGHTS), max_reasoning_tokens=24, no_repeat_ngram_size=3)
    tasks = {s: load_task(s, "dev", args.queries) for s in ("wordnet", "debian", "pycode")}
    queries = {s: task[0] for s, task in tasks.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16), module.auto_model.disable_adapter():
        written = {s: [first_sentences(r, 1) for r in module.reasoning_of(qs)] for s, qs in queries.items()}
    module.forget_reasoning()
    module.auto_model = module.auto_model.merge_and_unload()
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine")
    rows = {}
    for source, (_, corpus, relevant) in tasks.items():
        documents = model.encode_document(corpus, batch_size=32)
        scores = view_scores(model, queries[source], written[source], documents, relevant)
        rows[source] = {"queries": len(written[source]), "ndcg_at_10": scores, "first_reasonings": written[source][:5]}
        print(source, json.dumps(rows[source]), flush=True)
    (RESULTS / "base_writer_probe_dev.json").write_text(
        json.dumps({"command": "python " + " ".join(sys.argv), "tasks": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
