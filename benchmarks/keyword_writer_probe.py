"""Dev probe: can the model learn to *guess* the key terms of a query's answer, and do its guesses help?

Keyword reasoning (``st_search_r3.data.reasoning_targets``: the synset's words, the description's distinctive
terms, the function's name and identifiers) is what a retriever would like to be told. A writer (the
shipped stage-1 adapter, trained further with the LM and format terms only) learns to write it, then
``<|embed_token|>``, for ``--train-pairs`` training queries. The writer then reasons, greedy and guarded,
on dev queries it never saw, and the shipped embedder (unchanged) embeds each query off, fused with the
writer's reasoning (``fuse_direct_embedding``), and from the reasoning view alone. Also: the share of
traces the writer ended itself, loops, and five traces per task.

    python benchmarks/keyword_writer_probe.py --train-pairs 1500 --epochs 2 --queries 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm import tqdm

from st_search_r3.data.build import data_dir
from st_search_r3.install import SHIPPED_WEIGHTS
from st_search_r3.module import SearchR3
from st_search_r3.training.config import SearchR3SFTConfig
from st_search_r3.training.losses import SearchR3Loss
from st_search_r3.training.sft_data import build_model, load_triplets

sys.path.insert(0, str(Path(__file__).parent))
from base_writer_probe import view_scores  # noqa: E402
from reasoning_report import load_task, loops  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def train_writer(config: SearchR3SFTConfig, epochs: int, batch_size: int, learning_rate: float) -> SentenceTransformer:
    model = build_model(config)
    triplets = load_triplets(config)
    pairs = [[q, r] for q, r in zip(triplets["anchor"], triplets["reasoning"])]
    loss = SearchR3Loss(model, infonce_weight=0, triplet_weight=0, lm_weight=1.0, kl_weight=0, format_weight=1.0)
    llm = model[0].auto_model.train()
    optimizer = torch.optim.AdamW([p for p in llm.parameters() if p.requires_grad], lr=learning_rate)
    steps = epochs * ((len(pairs) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(0)
    bar = tqdm(total=steps, desc="training the writer")
    for _ in range(epochs):
        for batch in torch.randperm(len(pairs), generator=generator).split(batch_size):
            features = model[0].preprocess([pairs[i] for i in batch.tolist()], task="query", reasoning=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                _, sums, _ = loss.encode(features)
            total = (sums["lm"] + sums["format"]) / len(batch)
            total.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            bar.update()
            bar.set_postfix(
                lm=f"{float(sums['lm']) / len(batch):.2f}", format=f"{float(sums['format']) / len(batch):.2f}"
            )
    bar.close()
    llm.eval()
    return model


def cached_documents(model: SentenceTransformer, source: str, corpus: list[str]) -> np.ndarray:
    """The shipped embedder's vectors of a dev corpus, kept on disk: they never change between probes."""
    digest = hashlib.sha256((SHIPPED_WEIGHTS / "adapter_model.safetensors").read_bytes())
    digest.update("\n".join(corpus).encode())
    path = data_dir() / "probe_documents" / f"{source}-{digest.hexdigest()[:16]}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, model.encode_document(corpus, batch_size=32, show_progress_bar=True))
    return np.load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-pairs", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-reasoning-tokens", type=int, default=32)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    config = SearchR3SFTConfig(
        init_adapter=str(SHIPPED_WEIGHTS),
        max_train_pairs=args.train_pairs,
        max_reasoning_tokens=args.max_reasoning_tokens,
        no_repeat_ngram_size=3,
        max_seq_length=192,
    )
    start = time.perf_counter()
    writer = train_writer(config, args.epochs, 16, args.learning_rate)[0]
    training_seconds = time.perf_counter() - start
    tasks = {s: load_task(s, "dev", args.queries) for s in ("wordnet", "debian", "pycode")}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        traces = {s: writer.reasoning_traces(task[0]) for s, task in tasks.items()}
    embedder = SearchR3(str(SHIPPED_WEIGHTS))
    embedder.auto_model = embedder.auto_model.merge_and_unload()
    model = SentenceTransformer(modules=[embedder], similarity_fn_name="cosine")
    rows = {}
    for source, (queries, corpus, relevant) in tasks.items():
        written = [writer.tokenizer.decode(t.token_ids, skip_special_tokens=True).strip() for t in traces[source]]
        documents = cached_documents(model, source, corpus)
        rows[source] = {
            "queries": len(written),
            "ndcg_at_10": view_scores(model, queries, written, documents, relevant),
            "self_ended": float(np.mean([t.stop_token_id == writer.embed_token_id for t in traces[source]])),
            "loops": float(np.mean([loops(t.token_ids) for t in traces[source]])),
            "mean_tokens": float(np.mean([len(t.token_ids) for t in traces[source]])),
            "first_reasonings": [f"{q} -> {r}" for q, r in zip(queries[:5], written)],
        }
        print(source, json.dumps(rows[source]), flush=True)
    (RESULTS / "keyword_writer_probe_dev.json").write_text(
        json.dumps(
            {"command": "python " + " ".join(sys.argv), "writer_training_seconds": training_seconds, "tasks": rows},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
