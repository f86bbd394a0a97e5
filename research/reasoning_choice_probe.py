"""Can the model tell, before it reasons, whether its reasoning will help? A probe of the first-step state.

    python research/reasoning_choice_probe.py collect --split dev --queries 100   # ~25 min on 2 cores
    python research/reasoning_choice_probe.py analyse                             # seconds

``collect``: for each task's first ``--queries`` dev queries (seed 0, as ``reasoning_report.py``), with the installed
search-r3: the rank of the relevant document without reasoning, after the greedy reasoning (whole, first sentence,
first two sentences) and with each fused with the direct view; and the last hidden state of the reasoning prompt,
where the model makes its first-token choice. Written to ``research/results/reasoning_choice_probe.jsonl`` (ranks)
and ``reasoning_choice_probe_states.npy`` (states, not committed: 1 MB).

``analyse``: a logistic regression on the standardised states, weighted by each query's |DCG@100 gain|,
5-fold cross-validated, decides per query whether to reason; printed and written to
``reasoning_choice_probe.json``: the nDCG@10 gain it takes against the most a perfect choice could take.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))  # reasoning_report.py
RESULTS = Path(__file__).parent / "results"
RANKS, STATES = RESULTS / "reasoning_choice_probe.jsonl", RESULTS / "reasoning_choice_probe_states.npy"
SOURCES = ["wordnet", "debian", "pycode", "manpages", "infomanuals"]


def first_sentences(text: str, count: int) -> str:
    """The first ``count`` sentences of ``text`` (split at a period and white space, except after a list
    number), on one line, ending with a period."""
    from st_search_r3.training.stop_training import SENTENCE_END

    sentences = [" ".join(part.split()) for part in SENTENCE_END.split(text) if part.strip()]
    kept = ". ".join(sentences[:count])
    return kept if kept.endswith(".") or not kept else kept + "."


def collect(split_name: str, num_queries: int) -> None:
    import torch
    from reasoning_report import load_task, ranks
    from sentence_transformers import SentenceTransformer

    from st_search_r3.embedding import last_token_embedding, left_pad
    from st_search_r3.install import install

    model = SentenceTransformer(str(install()), trust_remote_code=True, device="cpu")
    module = model[0]
    records, states = [], []
    for source in SOURCES:
        queries, corpus, relevant = load_task(source, split_name, num_queries)
        documents = model.encode_document(corpus, batch_size=16)
        off = model.encode_query(queries, batch_size=16, reasoning=False)
        texts = module.reasoning_of(queries, reasoning=True)
        lengths = [len(t.token_ids) for t in module.reasoning_traces(queries, reasoning=True)]
        views = {"off": off}
        for name, cut in (("full", None), ("s1", 1), ("s2", 2)):
            pairs = [(q, r if cut is None else first_sentences(r, cut)) for q, r in zip(queries, texts)]
            views[name] = model.encode_query(pairs, batch_size=16, reasoning=True)
            fused = off / np.linalg.norm(off, axis=1, keepdims=True) + views[name] / np.linalg.norm(
                views[name], axis=1, keepdims=True
            )
            views[f"fused_{name}"] = fused / np.linalg.norm(fused, axis=1, keepdims=True)
        found = {name: ranks(vectors @ documents.T, relevant) for name, vectors in views.items()}
        with torch.inference_mode():
            for start in range(0, len(queries), 16):
                prompts = [module.query_prompt_ids(q) for q in queries[start : start + 16]]
                ids, mask = left_pad(prompts, module.tokenizer.pad_token_id)
                states.append(last_token_embedding(module.auto_model, ids, mask).float().numpy())
        for i, query in enumerate(queries):
            ranked = {f"rank_{name}": found[name][i] for name in found}
            records.append({"task": source, "query": query, "reasoning": texts[i], "tokens": lengths[i], **ranked})
        print(source, len(queries), len(corpus), flush=True)
    RANKS.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    np.save(STATES, np.concatenate(states))


def ndcg_at(rank: int, k: int) -> float:
    """nDCG@k of a query from the 1-based rank of its best-placed relevant document, as if it had that one only
    (the recorded ranks hold no more)."""
    from st_search_r3.training.reward import dcg_reward

    return dcg_reward(range(rank), [rank - 1], k=k)


def analyse() -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    records = [json.loads(line) for line in RANKS.open()]
    states = np.load(STATES)
    states = (states - states.mean(0)) / states.std(0)
    rows = []
    for view in ("s1", "full", "fused_full"):
        gain = np.array([ndcg_at(r[f"rank_{view}"], 100) - ndcg_at(r["rank_off"], 100) for r in records])
        ndcg_gain = np.array([ndcg_at(r[f"rank_{view}"], 10) - ndcg_at(r["rank_off"], 10) for r in records])
        label = (gain > 0).astype(int)
        for c in (0.001, 0.01, 0.1, 1.0):
            chosen = np.zeros(len(label))
            for fit, held in StratifiedKFold(5, shuffle=True, random_state=0).split(states, label):
                probe = LogisticRegression(C=c, max_iter=2000)
                probe.fit(states[fit], label[fit], sample_weight=np.abs(gain[fit]) + 1e-4)
                chosen[held] = probe.predict(states[held])
            rows.append(
                {
                    "view": view,
                    "C": c,
                    "reasoning_share": float(chosen.mean()),
                    "ndcg_at_10_gain_taken": float(100 * (ndcg_gain * chosen).mean()),
                    "ndcg_at_10_gain_possible": float(100 * np.clip(ndcg_gain, 0, None).mean()),
                }
            )
            print(json.dumps(rows[-1]))
    result = {"queries": len(records), "probes": rows}
    (RESULTS / "reasoning_choice_probe.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["collect", "analyse"])
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    if args.stage == "collect":
        collect(args.split, args.queries)
    else:
        analyse()


if __name__ == "__main__":
    main()
