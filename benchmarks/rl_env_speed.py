"""Time per RL step against corpus size: the cached corpus index versus re-encoding the corpus each step.

One RL step = the policy part (sample ``queries x generations`` reasonings with the real SmolLM2, embed
each, one forward/backward over the completions: what GRPO does per step, independent of the corpus)
+ the environment part:
  cached:    CorpusIndex.refresh (the step's relevant documents + a rolling slice of ``refresh_size``,
             re-encoded with the real model) + a faiss search of every completion's embedding;
  re-encode: encode every document with the real model, build a faiss index, search.
Corpus: real WordNet training documents (repeated past 20k). Up to ``--real-limit`` documents every
vector is real; above it the cache starts from random unit vectors (the refresh still re-encodes real
documents) and the re-encode baseline is *estimated* as (measured seconds per document) x N + the
measured faiss build and search on N vectors. Every other figure is measured in this run.

    python benchmarks/rl_env_speed.py            # 1k, 10k, 100k documents (~6 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.data.sources import data_dir
from st_search_r3.embedding import last_token_embedding, left_pad
from st_search_r3.training.corpus_index import CorpusIndex

RESULTS = Path(__file__).parent / "results"


def policy_step(model: SentenceTransformer, queries: list[str], generations: int) -> float:
    """Seconds for the corpus-independent part of a GRPO step on the real model."""
    module = model[0]
    llm = module.auto_model
    prompts = [module.query_prompt_ids(q) for q in queries for _ in range(generations)]
    ids, mask = left_pad(prompts, module.tokenizer.pad_token_id)
    start = time.perf_counter()
    with torch.no_grad():
        config = module.reasoning_generation_config()
        config.do_sample, config.temperature = True, 1.0  # GRPO samples
        sequences = llm.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        full_mask = torch.cat([mask, torch.ones_like(sequences[:, ids.shape[1] :])], dim=1)
        last_token_embedding(llm, sequences, full_mask)  # each completion's embedding
    llm.train()
    logits = llm(input_ids=sequences, attention_mask=full_mask).logits[:, ids.shape[1] - 1 : -1]
    torch.log_softmax(logits.float(), -1).gather(-1, sequences[:, ids.shape[1] :, None]).mean().backward()
    llm.zero_grad(set_to_none=True)
    llm.eval()
    return time.perf_counter() - start


def corpus_texts(size: int) -> list[str]:
    documents = list(RetrievalSplit.load(data_dir() / "wordnet" / "train").corpus.values())
    return [documents[i % len(documents)] for i in range(size)]


def unit_vectors(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--steps", type=int, default=3, help="RL steps timed per size")
    parser.add_argument("--queries", type=int, default=2, help="queries per step")
    parser.add_argument("--generations", type=int, default=4, help="sampled reasonings per query")
    parser.add_argument("--refresh-size", type=int, default=32)
    parser.add_argument("--real-limit", type=int, default=1_000, help="largest corpus encoded for real")
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = SentenceTransformer(modules=[SearchR3(max_reasoning_tokens=64)])
    model.eval()
    dim = model.get_embedding_dimension()

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode_document(texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=True)

    dev = RetrievalSplit.load(data_dir() / "wordnet" / "dev")
    queries = list(dev.queries.values())[: args.queries]
    policy_step(model, queries, args.generations)  # warm-up
    policy = [policy_step(model, queries, args.generations) for _ in range(args.steps)]
    policy_seconds = float(np.mean(policy))
    print(f"policy part: {policy_seconds:.2f} s/step ({args.queries} queries x {args.generations} reasonings)")

    rows, seconds_per_document = [], None
    for size in args.sizes:
        texts = corpus_texts(size)
        index = CorpusIndex(list(range(size)), texts, encode, refresh_size=args.refresh_size)
        real = size <= args.real_limit
        start = time.perf_counter()
        if real:
            index.build()
            seconds_per_document = (time.perf_counter() - start) / size
        else:
            index.prime(unit_vectors(size, dim))
        rng = np.random.default_rng(size)
        cached = []
        for step in range(1, args.steps + 1):
            touched = rng.choice(size, args.queries, replace=False).tolist()
            completions = unit_vectors(args.queries * args.generations, dim, seed=step)
            start = time.perf_counter()
            index.refresh(step, touched)
            index.search(completions, args.k)
            cached.append(time.perf_counter() - start)

        flat_start = time.perf_counter()
        flat = faiss.IndexFlatIP(dim)
        flat.add(index.vectors)
        flat.search(unit_vectors(args.queries * args.generations, dim), args.k)
        faiss_seconds = time.perf_counter() - flat_start
        if real:
            start = time.perf_counter()
            encode(texts)
            reencode = time.perf_counter() - start + faiss_seconds
        else:
            reencode = seconds_per_document * size + faiss_seconds
        row = {
            "documents": size,
            "vectors": "real" if real else "synthetic (refreshed documents real)",
            "environment_cached_s": float(np.mean(cached)),
            "environment_reencode_s": reencode,
            "reencode_measured": real,
            "step_cached_s": policy_seconds + float(np.mean(cached)),
            "step_reencode_s": policy_seconds + reencode,
        }
        rows.append(row)
        print(
            f"{size:>7} docs: cached step {row['step_cached_s']:.2f} s"
            f" (environment {row['environment_cached_s']:.2f} s)"
            f" | re-encode step {row['step_reencode_s']:.1f} s ({'measured' if real else 'estimated'})",
            flush=True,
        )

    first, last = rows[0], rows[-1]
    growth_cached = last["step_cached_s"] / first["step_cached_s"]
    growth_reencode = last["step_reencode_s"] / first["step_reencode_s"]
    print(
        f"step time growth {first['documents']} -> {last['documents']} documents: "
        f"cached {growth_cached:.2f}x, re-encode {growth_reencode:.1f}x"
    )
    result = {
        "command": " ".join(["python", "benchmarks/rl_env_speed.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "model": "SmolLM2-135M-Instruct in SearchR3 (float32), documents without reasoning",
        "corpus": "WordNet 3.0 training documents (st_search_r3.data.build)",
        "policy_step_s": policy_seconds,
        "seconds_per_document": seconds_per_document,
        "rows": rows,
        "growth_cached": growth_cached,
        "growth_reencode": growth_reencode,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rl_env_speed.json").write_text(json.dumps(result, indent=2))
    lines = [
        "| documents | vectors | cached step (s) | re-encode step (s) |",
        "|---:|---|---:|---:|",
        *(
            f"| {r['documents']:,} | {r['vectors']} | {r['step_cached_s']:.2f} | {r['step_reencode_s']:.1f}"
            f"{'' if r['reencode_measured'] else ' (estimated)'} |"
            for r in rows
        ),
        "",
        f"Growth {first['documents']:,} -> {last['documents']:,}: cached {growth_cached:.2f}x, "
        f"re-encode {growth_reencode:.1f}x. Policy part {policy_seconds:.2f} s/step. `{result['command']}`",
    ]
    (RESULTS / "rl_env_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
