"""Does the reasoning pay? Reasoning off, on and "auto" (the model's choice) per query, the traces' quality,
and sample reasonings.

    python benchmarks/reasoning_report.py --split test                  # the installed search-r3
    python benchmarks/reasoning_report.py --split dev --model runs/stop_head/final

For each task's split (all its queries unless ``--queries``): the corpus is embedded once (documents never
reason), the queries three ways: reasoning off, on (always reasoning) and auto. Per query and way: the rank of its
best-placed relevant document and its nDCG@10 over all of them (``training.reward.dcg_reward``). Printed and
written to ``benchmarks/results/reasoning_<split><suffix>.{json,md,png}``:

- nDCG@10 off, on and auto (computed here; ``quality.py`` gives the same figures through mteb), and the oracle
  that picks the better of off and on per query: how much of its gain auto took;
- queries/s off, on and auto (query encoding only, same run, same batch size);
- the share of queries that reasoned under auto and their mean reasoning length in tokens;
- trace quality, of auto's traces and of always-on's: the share in which a token 4-gram occurs 3 or more times
  (loops), the share that ended with an ``<|embed_token|>`` the model wrote itself (under auto, a query that
  stopped at once did);
- ten sample reasonings drawn with a fixed seed among the queries that reasoned under auto (among all queries
  of always-on where none did), not picked by hand.

With ``--samples N`` it also measures the ceiling of choosing per query: N reasonings sampled per query (T 0.8,
top-k 20) are embedded too, and the oracle that keeps, per query, the best of {no reasoning, greedy} or of
{no reasoning, greedy, samples} gives the most a perfect choice can gain. Every query's ranks go to
``reasoning_<split><suffix>_per_query.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.data.sources import data_dir
from st_search_r3.training.reward import dcg_reward

RESULTS = Path(__file__).parent / "results"
TASKS = {
    "wordnet": "SearchR3WordNetRetrieval",
    "debian": "SearchR3DebianRetrieval",
    "pycode": "SearchR3PythonCodeRetrieval",
    "manpages": "SearchR3ManPagesRetrieval",
    "infomanuals": "SearchR3InfoManualsRetrieval",
    "faqs": "SearchR3FAQRetrieval",
    "vimfaq": "SearchR3VimFAQRetrieval",
}
MODES = {"off": False, "on": True, "auto": "auto"}


def loops(token_ids: tuple[int, ...], n: int = 4, times: int = 3) -> bool:
    """Whether some n-gram of ``token_ids`` occurs ``times`` times or more."""
    grams = Counter(tuple(token_ids[i : i + n]) for i in range(len(token_ids) - n + 1))
    return any(count >= times for count in grams.values())


def ranks(scores: np.ndarray, relevant: list[list[int]]) -> list[int]:
    """1-based rank of each query's best-placed relevant document (ties counted against it), from the
    query-document ``scores``."""
    best = np.array([scores[i, rows].max() for i, rows in enumerate(relevant)])
    return [int(r) for r in (scores >= best[:, None]).sum(axis=1)]


def ndcg_at_10(scores: np.ndarray, relevant: list[list[int]]) -> np.ndarray:
    """Each query's nDCG@10 over all its relevant documents (trec_eval's ``ndcg_cut_10``, binary gains), from the
    query-document ``scores``."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return np.array([dcg_reward(row.tolist(), rows, k=10) for row, rows in zip(top, relevant)])


def load_task(source: str, split_name: str, num_queries: int) -> tuple[list[str], list[str], list[list[int]]]:
    """``(queries, documents, relevant)``: ``num_queries`` queries (seed 0; 0: all) that have a relevant
    document, the whole corpus of the split, and the indices of each query's relevant documents in it."""
    split = RetrievalSplit.load(data_dir() / source / split_name)
    split = split.sample(num_queries or len(split.queries), len(split.corpus), seed=0)
    query_ids = [q for q in split.queries if any(score > 0 for score in split.qrels.get(q, {}).values())]
    document_ids = list(split.corpus)
    position = {d: i for i, d in enumerate(document_ids)}
    relevant = [[position[d] for d, score in split.qrels[q].items() if score > 0] for q in query_ids]
    return [split.queries[q] for q in query_ids], [split.corpus[d] for d in document_ids], relevant


def report_task(
    model, source: str, split_name: str, num_queries: int, batch_size: int, rng: random.Random, num_samples: int = 0
) -> dict:
    queries, corpus, relevant = load_task(source, split_name, num_queries)
    module = model[0]
    print(f"{TASKS[source]} {split_name}: {len(corpus)} documents, {len(queries)} queries", flush=True)
    documents = model.encode_document(corpus, batch_size=batch_size, show_progress_bar=True)
    timings, rank, ndcg, traces = {}, {}, {}, {}
    for mode, reasoning in MODES.items():
        module.forget_reasoning()
        start = time.perf_counter()
        vectors = model.encode_query(queries, batch_size=batch_size, reasoning=reasoning, show_progress_bar=True)
        timings[mode] = len(queries) / (time.perf_counter() - start)
        scores = vectors @ documents.T
        rank[mode], ndcg[mode] = ranks(scores, relevant), ndcg_at_10(scores, relevant)
        if reasoning:  # remembered from the encoding: no generation here
            traces[mode] = module.reasoning_traces(queries, reasoning=reasoning)
    reasoned = [i for i, t in enumerate(traces["auto"]) if t.token_ids]
    shown = "auto" if reasoned else "on"
    pool = reasoned or range(len(queries))
    texts = [module.tokenizer.decode(t.token_ids, skip_special_tokens=True).strip() for t in traces[shown]]
    samples = [
        dict(query=queries[i], mode=shown, reasoning=texts[i], rank_off=rank["off"][i], rank_with=rank[shown][i])
        for i in sorted(rng.sample(list(pool), min(10, len(pool))))
    ]
    best_greedy = np.maximum(ndcg["off"], ndcg["on"])
    oracle = {}
    if num_samples:
        drawn = module.sample_reasonings(queries, num_samples, batch_size=batch_size)
        pairs = [(query, reasoning) for query, group in zip(queries, drawn) for reasoning in group]
        sampled = model.encode_query(pairs, batch_size=batch_size, reasoning=True, show_progress_bar=True)
        repeated = [rows for rows in relevant for _ in range(num_samples)]
        scores = sampled @ documents.T
        rank_samples = np.array(ranks(scores, repeated)).reshape(len(queries), num_samples)
        ndcg_samples = ndcg_at_10(scores, repeated).reshape(len(queries), num_samples)
        oracle = {
            "ndcg_at_10_samples_mean": float(ndcg_samples.mean()),
            "ndcg_at_10_oracle_off_greedy_samples": float(np.maximum(best_greedy, ndcg_samples.max(axis=1)).mean()),
            "helped_by_a_sample": int((rank_samples.min(axis=1) < np.asarray(rank["off"])).sum()),
            "per_query": [
                {"query": q, "rank_off": a, "rank_greedy": b, "rank_samples": row.tolist(), "samples": group}
                for q, a, b, row, group in zip(queries, rank["off"], rank["on"], rank_samples, drawn)
            ],
        }

    def trace_quality(found) -> dict:
        return {
            "looping": float(np.mean([loops(t.token_ids) for t in found])),
            "self_ended": float(np.mean([t.stop_token_id == module.embed_token_id for t in found])),
        }

    return {
        **oracle,
        "task": TASKS[source],
        "queries": len(queries),
        "documents": len(corpus),
        **{f"ndcg_at_10_{mode}": float(ndcg[mode].mean()) for mode in MODES},
        "ndcg_at_10_oracle_off_greedy": float(best_greedy.mean()),
        "better_with_reasoning": sum(a < b for a, b in zip(rank["on"], rank["off"])),
        "worse_with_reasoning": sum(a > b for a, b in zip(rank["on"], rank["off"])),
        "better_with_auto": sum(a < b for a, b in zip(rank["auto"], rank["off"])),
        "worse_with_auto": sum(a > b for a, b in zip(rank["auto"], rank["off"])),
        **{f"queries_per_second_{mode}": timings[mode] for mode in MODES},
        "auto_reasoning_share": len(reasoned) / len(queries),
        "auto_mean_reasoning_tokens": float(np.mean([len(traces["auto"][i].token_ids) for i in reasoned]))
        if reasoned
        else 0.0,
        "auto_traces": trace_quality(traces["auto"]),
        "on_traces": {
            **trace_quality(traces["on"]),
            "mean_tokens": float(np.mean([len(t.token_ids) for t in traces["on"]])),
        },
        "samples": samples,
    }


def write_outputs(rows: list[dict], split: str, suffix: str, command: str, model_name: str) -> None:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        f"Reasoning off, on and auto, {split} splits, {model_name} (`{command}`)",
        "",
        "| task | queries | nDCG@10 off | on | auto | oracle off / on | auto's share of the oracle's gain | "
        "auto reasons on | mean tokens | self-ended | looping | q/s off | q/s auto | q/s on |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        possible = r["ndcg_at_10_oracle_off_greedy"] - r["ndcg_at_10_off"]
        taken = f"{(r['ndcg_at_10_auto'] - r['ndcg_at_10_off']) / possible:+.0%}" if possible > 0 else "-"
        lines.append(
            f"| {r['task']} | {r['queries']} | {pct(r['ndcg_at_10_off'])} | {pct(r['ndcg_at_10_on'])} | "
            f"{pct(r['ndcg_at_10_auto'])} | {pct(r['ndcg_at_10_oracle_off_greedy'])} | {taken} | "
            f"{pct(r['auto_reasoning_share'])}% | {r['auto_mean_reasoning_tokens']:.1f} | "
            f"{pct(r['auto_traces']['self_ended'])}% | {pct(r['auto_traces']['looping'])}% | "
            f"{r['queries_per_second_off']:.1f} | {r['queries_per_second_auto']:.1f} | "
            f"{r['queries_per_second_on']:.2f} |"
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.startswith("ndcg_at_10_")}
    total = sum(r["queries"] for r in rows)

    def over_queries(value) -> str:  # a per-task share, over all queries
        return pct(sum(value(r) * r["queries"] for r in rows) / total)

    lines += [
        "",
        f"Mean nDCG@10: off {pct(mean['ndcg_at_10_off'])}, on {pct(mean['ndcg_at_10_on'])}, "
        f"auto {pct(mean['ndcg_at_10_auto'])}, oracle off / on {pct(mean['ndcg_at_10_oracle_off_greedy'])}. "
        f"Auto, over all {total} queries: reasons on {over_queries(lambda r: r['auto_reasoning_share'])}%, "
        f"self-ended {over_queries(lambda r: r['auto_traces']['self_ended'])}%, "
        f"looping {over_queries(lambda r: r['auto_traces']['looping'])}%. "
        f"Always on: self-ended {over_queries(lambda r: r['on_traces']['self_ended'])}%, "
        f"looping {over_queries(lambda r: r['on_traces']['looping'])}%.",
        "",
        "Sample reasonings (seed 0, among the queries that reasoned under auto; for a task where none did, among "
        "all its queries with reasoning on): rank of the relevant document without -> with reasoning",
        "",
    ]
    for r in rows:
        for s in r["samples"]:
            lines.append(
                f"- [{r['task']}, {s['mode']}] **{s['query']}** -> _{s['reasoning']}_ "
                f"(rank {s['rank_off']} -> {s['rank_with']})"
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
    plot(rows, output.with_suffix(".png"), f"{split} splits: nDCG@10 by reasoning mode")
    print("\n".join(lines))


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = {"off": "ndcg_at_10_off", "auto": "ndcg_at_10_auto", "on": "ndcg_at_10_on"}
    bars["oracle off / on"] = "ndcg_at_10_oracle_off_greedy"
    width = 0.8 / len(bars)
    figure, axis = plt.subplots(figsize=(10, 4))
    x = np.arange(len(rows))
    for k, (label, key) in enumerate(bars.items()):
        axis.bar(x + k * width, [100 * r[key] for r in rows], width, label=label)
    names = [r["task"].removeprefix("SearchR3").removesuffix("Retrieval") for r in rows]
    axis.set_xticks(x + width * (len(bars) - 1) / 2, names)
    low = min(100 * r[key] for r in rows for key in bars.values())
    axis.set_ylim(max(0, low - 5), 100)
    axis.set_ylabel("nDCG@10")
    axis.set_title(title)
    axis.legend(ncol=4, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


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
    parser.add_argument("--queries", type=int, default=0, help="queries per task (0: all; all of the corpus)")
    parser.add_argument("--model", help="a model folder (default: the installed search-r3)")
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output-suffix", default="")
    parser.add_argument("--samples", type=int, default=0, help="sampled reasonings per query for the oracle (0: none)")
    parser.add_argument("--repetition-penalty", type=float, help="override the model's setting")
    parser.add_argument("--no-repeat-ngram-size", type=int, help="override the model's setting")
    parser.add_argument("--max-reasoning-tokens", type=int, help="override the model's setting")
    args = parser.parse_args()

    from st_search_r3.resolving import resolve_model

    # A training run's adapter folder is merged into its own snapshot, as `st-search-r3 install --weights` does.
    model = SentenceTransformer(resolve_model(args.model or "search-r3"), trust_remote_code=True, device="cpu")
    if args.precision == "bfloat16":
        model[0].auto_model.to(torch.bfloat16)
    for setting in ("repetition_penalty", "no_repeat_ngram_size", "max_reasoning_tokens"):
        if getattr(args, setting) is not None:
            setattr(model[0], setting, getattr(args, setting))
    settings = {k: getattr(model[0], k) for k in ("max_reasoning_tokens", "repetition_penalty", "no_repeat_ngram_size")}
    rng = random.Random(0)
    command = "python " + shlex.join(sys.argv)
    sources = [s for s in args.sources if (data_dir() / s / args.split).is_dir()]  # vimfaq has no dev split
    rows = [report_task(model, s, args.split, args.queries, args.batch_size, rng, args.samples) for s in sources]
    name = f"{args.model or 'search-r3 (installed)'}, {args.precision}, {settings}"
    write_outputs(rows, args.split, args.output_suffix, command, name)


if __name__ == "__main__":
    main()
