"""Does the reasoning pay? Reasoning on vs off per query, the traces' quality, and sample reasonings.

    python benchmarks/reasoning_report.py --split test                  # the installed search-r3
    python benchmarks/reasoning_report.py --split dev --queries 100 --model runs/sft_reasoning/final

For each task's split: the corpus is embedded once (documents never reason), the queries with reasoning
off and on. Per query: the rank of its relevant document both ways. Printed and written to
``benchmarks/results/reasoning_<split><suffix>.{json,md}``:

- nDCG@10 with reasoning off and on (computed here; ``quality.py`` gives the same figures through mteb);
- queries/s with reasoning off and on (query encoding only, same run, same batch size);
- trace quality: the share of reasonings in which a token 4-gram occurs 3 or more times (loops), the
  share that ended with an ``<|embed_token|>`` the model wrote itself, mean reasoning length in tokens;
- ten sample reasonings drawn with a fixed seed from the evaluated queries (not picked by hand).

With ``--samples N`` it also measures the ceiling of choosing per query: N reasonings sampled per query (T 0.8,
top-k 20) are embedded too, and the oracle that keeps, per query, the best of {no reasoning, greedy} or of
{no reasoning, greedy, samples} gives the most a perfect choice can gain. Every query's ranks go to
``reasoning_<split><suffix>_per_query.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_search_r3.data.build import data_dir
from st_search_r3.data.retrieval_split import RetrievalSplit

RESULTS = Path(__file__).parent / "results"
TASKS = {
    "wordnet": "SearchR3WordNetRetrieval",
    "debian": "SearchR3DebianRetrieval",
    "pycode": "SearchR3PythonCodeRetrieval",
    "manpages": "SearchR3ManPagesRetrieval",
    "infomanuals": "SearchR3InfoManualsRetrieval",
}


def loops(token_ids: tuple[int, ...], n: int = 4, times: int = 3) -> bool:
    """Whether some n-gram of ``token_ids`` occurs ``times`` times or more."""
    grams = Counter(tuple(token_ids[i : i + n]) for i in range(len(token_ids) - n + 1))
    return any(count >= times for count in grams.values())


def ndcg_at_10(rank: int) -> float:
    """nDCG@10 of one query with one relevant document at 1-based ``rank``."""
    return 1 / math.log2(rank + 1) if rank <= 10 else 0.0


def mean_ndcg_at_10(queries: np.ndarray, documents: np.ndarray, relevant: list[int]) -> float:
    """Mean nDCG@10 over queries, each with one relevant document (see :func:`ranks`)."""
    return float(np.mean([ndcg_at_10(r) for r in ranks(queries, documents, relevant)]))


def ranks(queries: np.ndarray, documents: np.ndarray, relevant: list[int]) -> list[int]:
    """1-based rank of each query's relevant document (ties counted against it)."""
    scores = queries @ documents.T
    own = scores[np.arange(len(relevant)), relevant]
    return [int(r) for r in (scores >= own[:, None]).sum(axis=1)]


def load_task(source: str, split_name: str, num_queries: int) -> tuple[list[str], list[str], list[int]]:
    """``(queries, documents, relevant)``: the first ``num_queries`` queries (seed 0) that have a relevant
    document, the whole corpus of the split, and the index of each query's most relevant document in it."""
    split = RetrievalSplit.load(data_dir() / source / split_name)
    split = split.sample(num_queries, len(split.corpus), seed=0)
    query_ids = [q for q in split.queries if split.qrels.get(q)]
    document_ids = list(split.corpus)
    position = {d: i for i, d in enumerate(document_ids)}
    relevant = [position[max(split.qrels[q], key=split.qrels[q].get)] for q in query_ids]
    return [split.queries[q] for q in query_ids], [split.corpus[d] for d in document_ids], relevant


def report_task(
    model, source: str, split_name: str, num_queries: int, batch_size: int, rng: random.Random, num_samples: int = 0
) -> dict:
    queries, corpus, relevant = load_task(source, split_name, num_queries)
    module = model[0]
    print(f"{TASKS[source]} {split_name}: {len(corpus)} documents, {len(queries)} queries", flush=True)
    documents = model.encode_document(corpus, batch_size=batch_size, show_progress_bar=True)
    timings, vectors = {}, {}
    for reasoning in (False, True):
        module.forget_reasoning()
        start = time.perf_counter()
        vectors[reasoning] = model.encode_query(
            queries, batch_size=batch_size, reasoning=reasoning, show_progress_bar=True
        )
        timings[reasoning] = len(queries) / (time.perf_counter() - start)
    traces = module.reasoning_traces(queries)  # remembered from the encoding: no generation here
    view_alone = None
    if module.fuse_direct_embedding:  # the reasoning's own view, without the direct one (remembered reasoning)
        module.fuse_direct_embedding = False
        alone = model.encode_query(queries, batch_size=batch_size, reasoning=True)
        module.fuse_direct_embedding = True
        view_alone = mean_ndcg_at_10(alone, documents, relevant)
    rank_off, rank_on = ranks(vectors[False], documents, relevant), ranks(vectors[True], documents, relevant)
    texts = [module.tokenizer.decode(t.token_ids, skip_special_tokens=True).strip() for t in traces]
    samples = [
        {"query": queries[i], "reasoning": texts[i], "rank_off": rank_off[i], "rank_on": rank_on[i]}
        for i in sorted(rng.sample(range(len(queries)), min(10, len(queries))))
    ]
    oracle = {}
    if num_samples:
        drawn = module.sample_reasonings(queries, num_samples, batch_size=batch_size)
        pairs = [(query, reasoning) for query, group in zip(queries, drawn) for reasoning in group]
        sampled = model.encode_query(pairs, batch_size=batch_size, reasoning=True, show_progress_bar=True)
        rank_samples = np.array(ranks(sampled, documents, np.repeat(relevant, num_samples).tolist()))
        rank_samples = rank_samples.reshape(len(queries), num_samples)
        best_greedy = np.minimum(rank_off, rank_on)
        best_any = np.minimum(best_greedy, rank_samples.min(axis=1))
        oracle = {
            "ndcg_at_10_samples_mean": float(np.mean([[ndcg_at_10(r) for r in row] for row in rank_samples])),
            "ndcg_at_10_oracle_off_greedy": float(np.mean([ndcg_at_10(r) for r in best_greedy])),
            "ndcg_at_10_oracle_off_greedy_samples": float(np.mean([ndcg_at_10(r) for r in best_any])),
            "helped_by_a_sample": int((rank_samples.min(axis=1) < np.asarray(rank_off)).sum()),
            "per_query": [
                {"query": q, "rank_off": a, "rank_greedy": b, "rank_samples": row.tolist(), "samples": group}
                for q, a, b, row, group in zip(queries, rank_off, rank_on, rank_samples, drawn)
            ],
        }
    return {
        **oracle,
        "task": TASKS[source],
        "queries": len(queries),
        "documents": len(corpus),
        "ndcg_at_10_off": float(np.mean([ndcg_at_10(r) for r in rank_off])),
        "ndcg_at_10_on": float(np.mean([ndcg_at_10(r) for r in rank_on])),
        "ndcg_at_10_reasoning_view_alone": view_alone,
        "better_with_reasoning": sum(a < b for a, b in zip(rank_on, rank_off)),
        "worse_with_reasoning": sum(a > b for a, b in zip(rank_on, rank_off)),
        "queries_per_second_off": timings[False],
        "queries_per_second_on": timings[True],
        "looping": float(np.mean([loops(t.token_ids) for t in traces])),
        "self_ended": float(np.mean([t.stop_token_id == module.embed_token_id for t in traces])),
        "mean_reasoning_tokens": float(np.mean([len(t.token_ids) for t in traces])),
        "samples": samples,
    }


def write_outputs(rows: list[dict], split: str, suffix: str, command: str, model_name: str) -> None:
    lines = [
        f"Reasoning on vs off, {split} splits, {model_name} (`{command}`)",
        "",
        "| task | queries | nDCG@10 off | nDCG@10 on | on, reasoning view alone | better / worse | q/s off | q/s on | "
        "looping | self-ended | mean tokens |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        view = r["ndcg_at_10_reasoning_view_alone"]
        alone = "-" if view is None else f"{100 * view:.1f}"
        lines.append(
            f"| {r['task']} | {r['queries']} | {100 * r['ndcg_at_10_off']:.1f} | {100 * r['ndcg_at_10_on']:.1f} | "
            f"{alone} | "
            f"{r['better_with_reasoning']} / {r['worse_with_reasoning']} | {r['queries_per_second_off']:.1f} | "
            f"{r['queries_per_second_on']:.2f} | {100 * r['looping']:.1f}% | {100 * r['self_ended']:.1f}% | "
            f"{r['mean_reasoning_tokens']:.1f} |"
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("ndcg_at_10_off", "ndcg_at_10_on")}
    lines += ["", f"Mean nDCG@10: off {100 * mean['ndcg_at_10_off']:.1f}, on {100 * mean['ndcg_at_10_on']:.1f}", ""]
    lines += ["Sample reasonings (seed 0): rank of the relevant document without -> with reasoning", ""]
    for r in rows:
        for s in r["samples"]:
            lines.append(
                f"- [{r['task']}] **{s['query']}** -> _{s['reasoning']}_ (rank {s['rank_off']} -> {s['rank_on']})"
            )
    if "per_query" in rows[0]:
        lines += oracle_lines(rows)
    output = RESULTS / f"reasoning_{split}{suffix}"
    per_query = [dict(task=r["task"], **q) for r in rows for q in r.pop("per_query", [])]
    if per_query:
        with open(f"{output}_per_query.jsonl", "w") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in per_query)
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    output.with_suffix(".json").write_text(
        json.dumps({"command": command, "model": model_name, "tasks": rows}, indent=2)
    )
    print("\n".join(lines))


def oracle_lines(rows: list[dict]) -> list[str]:
    """The ceiling of choosing per query whether (and with which reasoning) to reason."""
    lines = [
        "",
        "Oracle: per query the better of the options, nDCG@10 (what a perfect choice would reach)",
        "",
        "| task | off | greedy on | samples, mean | oracle off / greedy | oracle off / greedy / samples | "
        "helped by greedy | helped by a sample |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ("ndcg_at_10_off", "ndcg_at_10_on", "ndcg_at_10_samples_mean", "ndcg_at_10_oracle_off_greedy")
    keys += ("ndcg_at_10_oracle_off_greedy_samples",)
    for r in rows:
        cells = " | ".join(f"{100 * r[k]:.1f}" for k in keys)
        lines.append(f"| {r['task']} | {cells} | {r['better_with_reasoning']} | {r['helped_by_a_sample']} |")
    means = " | ".join(f"{100 * float(np.mean([r[k] for r in rows])):.1f}" for k in keys)
    return lines + [f"| mean | {means} | | |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    parser.add_argument("--sources", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--queries", type=int, default=300, help="queries per task (all of the split's corpus)")
    parser.add_argument("--model", help="a model folder (default: the installed search-r3)")
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output-suffix", default="")
    parser.add_argument("--samples", type=int, default=0, help="sampled reasonings per query for the oracle (0: none)")
    parser.add_argument("--repetition-penalty", type=float, help="override the model's setting")
    parser.add_argument("--no-repeat-ngram-size", type=int, help="override the model's setting")
    parser.add_argument("--max-reasoning-tokens", type=int, help="override the model's setting")
    args = parser.parse_args()

    if args.model:
        folder = args.model
    else:
        from st_search_r3.install import install

        folder = str(install())
    model = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
    if hasattr(model[0].auto_model, "merge_and_unload"):  # a training run's adapter: merged, as install does
        model[0].auto_model = model[0].auto_model.merge_and_unload()
    if args.precision == "bfloat16":
        model[0].auto_model.to(torch.bfloat16)
    for setting in ("repetition_penalty", "no_repeat_ngram_size", "max_reasoning_tokens"):
        if getattr(args, setting) is not None:
            setattr(model[0], setting, getattr(args, setting))
    settings = {k: getattr(model[0], k) for k in ("max_reasoning_tokens", "repetition_penalty", "no_repeat_ngram_size")}
    rng = random.Random(0)
    command = "python " + shlex.join(sys.argv)
    rows = [report_task(model, s, args.split, args.queries, args.batch_size, rng, args.samples) for s in args.sources]
    name = f"{args.model or 'search-r3 (installed)'}, {args.precision}, {settings}"
    write_outputs(rows, args.split, args.output_suffix, command, name)


if __name__ == "__main__":
    main()
