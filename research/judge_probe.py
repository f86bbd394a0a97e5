"""Can the frozen model judge a passage? A linear probe on its states after reading one query-passage pair.

    python research/judge_probe.py [--train-queries 1800] [--passage-tokens 48]

The single-prompt reader (all k passages in one prompt, one vector out) learned to do no harm, not to pick the
passage that answers. This probe asks the simpler question first: the shipped model reads each (query, passage)
pair of the first search's top 3 under a judging prompt, a linear head on the last position's states of a few
layers scores each pair, and a softmax over the three (and "none of them") is trained on the reader's cached
training first pass (``runs/reader_shuffle_k3/first_pass.pt``). On dev, the judged passages' vectors are added
to the direct query vector (``q + beta * sum_i p_i d_i``, normalised) and the whole corpus is searched again.

Features are cached in ``runs/judge_probe/``; writes ``research/results/judge_probe.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.training.reward import dcg_reward

RESULTS = Path(__file__).parent / "results"
CACHE = Path("runs/judge_probe")
FIRST_PASS = Path("runs/reader_shuffle_k3/first_pass.pt")
DEV_SOURCES = ["wordnet", "debian", "pycode", "manpages", "infomanuals", "faqs"]
JUDGE_PROMPT = "You are a search expert. Judge whether the passage answers the query."
LAYERS = (8, 16, 24, 30)
K = 3


def judge_ids(module, query: str, passage: str, passage_tokens: int) -> list[int]:
    before, after = module.prompts.template(JUDGE_PROMPT)
    prompts = module.prompts
    return (
        before
        + prompts.encode("Query: ")
        + prompts.encode_text(query, 64)
        + prompts.encode("\n\nPassage: ")
        + prompts.encode_text(passage, passage_tokens)
        + after
        + module.direct_answer_ids()
    )


@torch.inference_mode()
def judge_states(module, pairs: list[tuple[str, str]], passage_tokens: int, batch_size: int = 32) -> np.ndarray:
    """The last position's states of ``LAYERS`` for each pair, shape (pairs, len(LAYERS) * hidden), float16."""
    sequences = [judge_ids(module, q, p, passage_tokens) for q, p in pairs]
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = np.zeros((len(sequences), len(LAYERS) * module.auto_model.config.hidden_size), dtype=np.float16)
    pad = module.tokenizer.pad_token_id
    for start in tqdm(range(0, len(order), batch_size), desc="judge states", unit="batch"):
        rows = order[start : start + batch_size]
        width = max(len(sequences[i]) for i in rows)
        ids = torch.tensor([[pad] * (width - len(sequences[i])) + sequences[i] for i in rows])
        mask = torch.tensor([[0] * (width - len(sequences[i])) + [1] * len(sequences[i]) for i in rows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        states = module.auto_model(
            input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True
        ).hidden_states
        out[rows] = torch.cat([states[layer][:, -1] for layer in LAYERS], dim=-1).float().numpy()
    return out


def cached(path: Path, compute) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, value)
    return value


def pair_features(states: np.ndarray, scores: np.ndarray) -> torch.Tensor:
    """Per pair: the judge's states, the first search's cosine and its rank (one-hot)."""
    ranks = np.tile(np.eye(K, dtype=np.float32), (len(scores), 1))
    return torch.from_numpy(np.concatenate([states.astype(np.float32), scores.reshape(-1, 1), ranks], axis=1))


def fit_head(x: torch.Tensor, labels: torch.Tensor, weight_decay: float, epochs: int = 300) -> torch.nn.Module:
    """A linear score per pair; softmax over the query's k pairs and a learned "none of them" logit."""
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], 1)
    none = torch.nn.Parameter(torch.zeros(1))
    head.none = none
    optimizer = torch.optim.AdamW([*head.parameters()], lr=1e-3, weight_decay=weight_decay)
    for _ in range(epochs):
        logits = listwise_logits(head, x)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head


def listwise_logits(head, x: torch.Tensor) -> torch.Tensor:
    pair = head(x).view(-1, K)
    return torch.cat([pair, head.none.expand(len(pair), 1)], dim=1)


def labels_of(top: np.ndarray, relevant: list[set[int]]) -> torch.Tensor:
    """Per query the position in its top k of the first relevant document, or k (none)."""
    return torch.tensor([next((i for i, d in enumerate(row) if d in rel), K) for row, rel in zip(top, relevant)])


def ndcg(scores: torch.Tensor, relevant: list[set[int]]) -> float:
    top = scores.topk(min(10, scores.shape[1]), dim=1).indices.tolist()
    return 100 * float(np.mean([dcg_reward(r, list(rel), k=10) for r, rel in zip(top, relevant)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-queries", type=int, default=1800)
    parser.add_argument("--passage-tokens", type=int, default=48)
    parser.add_argument("--max-dev-queries", type=int, default=0, help="first N dev queries per task (0: all)")
    args = parser.parse_args()

    from reading_probe import mean_table  # research/ is on the path when this script runs
    from sentence_transformers import SentenceTransformer

    from st_search_r3.data.sources import data_dir
    from st_search_r3.indexing import model_identity
    from st_search_r3.install import install

    model = SentenceTransformer(str(install()), trust_remote_code=True, device="cpu")
    module = model[0]
    module.reasoning = False
    module.auto_model.eval()
    tag = model_identity(model)[:16]

    data = torch.load(FIRST_PASS)
    documents, direct = data["documents"], data["direct"]
    picked = sorted(random.Random(0).sample(range(len(data["examples"])), args.train_queries))
    examples = [data["examples"][i] for i in picked]
    scores = (direct[picked] @ documents.T).topk(K, dim=1)
    top, top_scores = scores.indices.numpy(), scores.values.numpy()
    pairs = [(e["query"], p) for e in examples for p in e["passages"][:K]]
    states = cached(
        CACHE / f"train_{args.train_queries}_t{args.passage_tokens}.npy",
        lambda: judge_states(module, pairs, args.passage_tokens),
    )
    x = pair_features(states, top_scores)
    labels = labels_of(top, [set(e["relevant"]) for e in examples])
    mean, std = x.mean(0), x.std(0) + 1e-4
    x = (x - mean) / std
    print(f"training queries {len(examples)}; label distribution {np.bincount(labels.numpy(), minlength=K + 1)}")

    # Weight decay on held-out training queries (a fifth), then the head refitted on all of them.
    held = torch.arange(len(examples)) % 5 == 0
    rows = torch.repeat_interleave(held, K)
    choice = {}
    for decay in (0.0, 0.1, 1.0, 10.0):
        head = fit_head(x[~rows], labels[~held], decay)
        with torch.no_grad():
            logits = listwise_logits(head, x[rows])
            choice[decay] = {
                "held_loss": F.cross_entropy(logits, labels[held]).item(),
                "held_accuracy": (logits.argmax(1) == labels[held]).float().mean().item(),
            }
        print(f"weight decay {decay}: {choice[decay]}")
    # A head on the first search's features alone: what the judge's states add.
    first_only = fit_head(x[~rows][:, -K - 1 :], labels[~held], 0.0)
    with torch.no_grad():
        logits = listwise_logits(first_only, x[rows][:, -K - 1 :])
    choice["first search only"] = {
        "held_loss": F.cross_entropy(logits, labels[held]).item(),
        "held_accuracy": (logits.argmax(1) == labels[held]).float().mean().item(),
    }
    print(f"first search features only: {choice['first search only']}")
    decay = min((d for d in choice if d != "first search only"), key=lambda d: choice[d]["held_loss"])
    head = fit_head(x, labels, decay)

    rows_out = []
    for source in DEV_SOURCES:
        split = RetrievalSplit.load(data_dir() / source / "dev")
        doc_ids = list(split.corpus)
        position = {d: i for i, d in enumerate(doc_ids)}
        query_ids = list(split.queries)
        queries = [split.queries[q] for q in query_ids]
        relevant = [{position[d] for d, s in split.qrels[q].items() if s > 0} for q in query_ids]
        # The document vectors research/reading_probe.py cached for the same model.
        docs = torch.from_numpy(
            cached(
                Path("runs/reading_probe") / f"{tag}_{source}_dev_docs.npy",
                lambda: model.encode_document([split.corpus[d] for d in doc_ids], batch_size=32),
            )
        )
        docs = F.normalize(docs.float(), dim=-1)
        query_ids = query_ids[: args.max_dev_queries or None]
        queries, relevant = queries[: len(query_ids)], relevant[: len(query_ids)]
        q = model.encode_query(queries, convert_to_tensor=True, normalize_embeddings=True, batch_size=32)
        first = (q @ docs.T).topk(K, dim=1)
        dev_pairs = [
            (query, split.corpus[doc_ids[d]]) for query, row in zip(queries, first.indices.tolist()) for d in row
        ]
        dev_states = cached(
            CACHE / f"{source}_dev{args.max_dev_queries or ''}_t{args.passage_tokens}.npy",
            lambda: judge_states(module, dev_pairs, args.passage_tokens),
        )
        xd = (pair_features(dev_states, first.values.numpy()) - mean) / std
        with torch.no_grad():
            probs = listwise_logits(head, xd).softmax(dim=1)
        dev_labels = labels_of(first.indices.numpy(), relevant)
        row = {
            "source": source,
            "queries": len(queries),
            "off": ndcg(q @ docs.T, relevant),
            "judge accuracy": 100 * (probs.argmax(1) == dev_labels).float().mean().item(),
            "first-rank accuracy": 100 * (dev_labels == 0).float().mean().item(),
        }
        for beta in (0.5, 1.0, 2.0, 4.0):
            moved = q + beta * (probs[:, :K, None] * docs[first.indices]).sum(dim=1)
            row[f"judged b{beta}"] = ndcg(F.normalize(moved, dim=-1) @ docs.T, relevant)
        print(json.dumps(row), flush=True)
        rows_out.append(row)
    means = mean_table(rows_out, [key for key in rows_out[0] if key not in ("source", "queries")])
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python " + shlex.join(sys.argv),
        "weight_decay": {str(k): v for k, v in choice.items()},
        "chosen_weight_decay": decay,
        "rows": rows_out,
        "mean": means,
    }
    (RESULTS / "judge_probe.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
