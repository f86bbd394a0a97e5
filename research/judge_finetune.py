"""Can the shipped model judge a passage once it is trained to? A LoRA cross-encoder over the hybrid search's top k.

    python research/judge_finetune.py [--train-queries 1600] [--k 3] [--passage-tokens 48]

The frozen model's states could not tell the passage that answers from its neighbour (``judge_probe.py``), and the
single-prompt reader learned to do no harm, not to choose. Here the choice is the training signal itself: the model
reads one (query, passage) pair under a judging prompt with a LoRA of its own on (:class:`st_search_r3.reader.Reader`,
off for documents and direct queries), and a linear head on the final state at the embed token scores the pair.
That score is added to the hybrid search's (cosine + BM25's share, ``hybrid_scores``) times a learned scale, and a
softmax over the query's candidates (the hybrid top k of its source's training corpus, plus the relevant document
where the search missed it) is trained to pick the relevant one. The head starts at zero, so the judge starts as
the hybrid order and learns only what the hybrid score does not already say.

Training queries and their first search come from the hybrid-first reader's cache
(``runs/reader_hybrid_k2/first_pass.pt``, made by ``train/read.py --lexical_weight 0.1``); the corpus texts are drawn
again with the same seed. On dev, from the same vectors: reasoning off, the hybrid search, and the hybrid search
with its top k re-ordered by the judge. Writes ``research/results/judge_finetune.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.embedding import shared_prefix_hidden_states
from st_search_r3.lexical import LEXICAL_WEIGHT, LexicalIndex, hybrid_scores
from st_search_r3.reader import Reader

RESULTS = Path(__file__).parent / "results"
FIRST_PASS = Path("runs/reader_hybrid_k2")
DEV_SOURCES = ["wordnet", "debian", "pycode", "manpages", "infomanuals", "faqs"]


class Judge(torch.nn.Module):
    """The pair score: a linear head on the embed token's final state, plus ``scale`` times the hybrid score."""

    def __init__(self, hidden_size: int, temperature: float = 0.05):
        super().__init__()
        self.head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.log_scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / temperature))))

    def forward(self, states: torch.Tensor, hybrid: torch.Tensor) -> torch.Tensor:
        return self.head(states.float()).squeeze(-1) + self.log_scale.exp() * hybrid


def pair_states(module, pairs: list[tuple[str, str]], passage_tokens: int) -> torch.Tensor:
    """The final state at the embed token after the judging prompt of each pair (left-padded, one batch)."""
    from judge_probe import JUDGE_PROMPT, judge_ids  # research/ is on the path when this script runs

    sequences = [judge_ids(module, q, p, passage_tokens) for q, p in pairs]
    width, pad = max(map(len, sequences)), module.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    prefix = len(module.prompts.template(JUDGE_PROMPT)[0]) + len(module.prompts.encode("Query: "))  # shared by all
    return shared_prefix_hidden_states(module.auto_model, ids, mask, prefix)[:, -1]


def training_texts(record: dict) -> tuple[list[str], list[tuple[int, int]]]:
    """The sampled training corpora's texts in ``first_pass.pt``'s order, and each source's (queries, documents)."""
    from st_search_r3.training.config import SearchR3ReaderConfig
    from st_search_r3.training.reader_training import training_sample

    config = SearchR3ReaderConfig(**record["config"])
    texts, sizes = [], []
    for source in config.sources:
        split = training_sample(config, source)
        texts += list(split.corpus.values())
        sizes.append((sum(1 for q in split.queries if split.qrels.get(q)), len(split.corpus)))
    return texts, sizes


def training_candidates(data: dict, sizes: list[tuple[int, int]], k: int) -> list[dict]:
    """Per training query: the hybrid top k of its own source's corpus, the relevant document added where missed."""
    rows, query_start, doc_start = [], 0, 0
    for n_queries, n_docs in sizes:
        block = slice(doc_start, doc_start + n_docs)
        for i in range(query_start, query_start + n_queries):
            scores = data["direct"][i] @ data["documents"][block].T + data["lexical"][i, block]
            top = (scores.topk(k).indices + doc_start).tolist()
            relevant = data["examples"][i]["relevant"]
            found = next((d for d in top if d in relevant), None)
            candidates = top if found is not None else top + [relevant[0]]
            target = candidates.index(found if found is not None else relevant[0])
            hybrid = scores[[d - doc_start for d in candidates]]
            rows.append({"query": data["examples"][i]["query"], "docs": candidates, "hybrid": hybrid, "target": target})
        query_start, doc_start = query_start + n_queries, doc_start + n_docs
    return rows


def listwise_loss(scores: list[torch.Tensor], batch: list[dict]) -> torch.Tensor:
    """Mean cross-entropy of each query's candidate scores against its relevant one (queries differ in candidates:
    k, or k + 1 where the search missed)."""
    return torch.stack([F.cross_entropy(s[None], torch.tensor([r["target"]])) for s, r in zip(scores, batch)]).mean()


def hybrid_losses(rows: list[dict], batch_size: int, judge: Judge) -> list[float]:
    """The loss of each training step's batch with the judge's head at zero: the hybrid order alone."""
    scale = judge.log_scale.detach().exp()
    batches = [rows[i : i + batch_size] for i in range(0, len(rows) - batch_size + 1, batch_size)]
    return [round(listwise_loss([scale * r["hybrid"] for r in batch], batch).item(), 4) for batch in batches]


def train(module, judge: Judge, rows: list[dict], texts: list[str], args) -> list[float]:
    optimizer = torch.optim.AdamW(
        [{"params": module.reader.parameters(), "lr": args.lr}, {"params": judge.parameters(), "lr": args.head_lr}]
    )
    steps, history = len(rows) // args.batch_size, []
    progress = tqdm(range(steps), desc="judge", unit="step")
    for step in progress:
        batch = rows[step * args.batch_size : (step + 1) * args.batch_size]
        pairs = [(r["query"], texts[d]) for r in batch for d in r["docs"]]
        with module.reader.active():
            states = pair_states(module, pairs, args.passage_tokens)
        scores = judge(states, torch.cat([r["hybrid"] for r in batch])).split([len(r["docs"]) for r in batch])
        loss = listwise_loss(scores, batch)
        for group, base in zip(optimizer.param_groups, (args.lr, args.head_lr)):
            group["lr"] = base * min(1.0, (step + 1) / 10) * 0.5 * (1 + np.cos(np.pi * step / steps))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(round(loss.item(), 4))
        progress.set_postfix(loss=f"{np.mean(history[-20:]):.3f}", scale=f"{judge.log_scale.exp().item():.1f}")
    return history


@torch.inference_mode()
def dev_row(model, judge: Judge, source: str, args) -> dict:
    from reading_probe import CACHE as VECTOR_CACHE
    from reading_probe import ndcg_recall

    from st_search_r3.data.sources import data_dir
    from st_search_r3.indexing import model_identity

    module = model[0]
    split = RetrievalSplit.load(data_dir() / source / "dev")
    doc_ids = list(split.corpus)
    position = {d: i for i, d in enumerate(doc_ids)}
    query_ids = list(split.queries)[: args.max_dev_queries or None]
    queries = [split.queries[q] for q in query_ids]
    relevant = [{position[d] for d, s in split.qrels[q].items() if s > 0} for q in query_ids]
    cache = VECTOR_CACHE / f"{model_identity(model)[:16]}_{source}_dev_docs.npy"
    texts = [split.corpus[d] for d in doc_ids]
    docs = (
        torch.from_numpy(np.load(cache))
        if cache.is_file()
        else model.encode_document(texts, batch_size=32, convert_to_tensor=True)
    )
    docs = F.normalize(docs.float(), dim=-1)
    q = model.encode_query(queries, convert_to_tensor=True, normalize_embeddings=True, batch_size=32)
    cosine = q @ docs.T
    hybrid = hybrid_scores(cosine, LexicalIndex(texts).scores(queries), LEXICAL_WEIGHT)
    top = hybrid.topk(args.k, dim=1)
    started = time.time()
    judged = []
    for start in tqdm(range(0, len(queries), 8), desc=f"judge {source}", unit="batch", leave=False):
        rows = range(start, min(start + 8, len(queries)))
        pairs = [(queries[i], texts[d]) for i in rows for d in top.indices[i].tolist()]
        with module.reader.active():
            states = pair_states(module, pairs, args.passage_tokens)
        judged.append(judge(states, top.values[list(rows)].reshape(-1)).view(len(rows), args.k))
    seconds = time.time() - started
    judged = torch.cat(judged)
    # The judge re-orders the top k; below them the hybrid order stays (shifted so the k stay above it).
    reordered = hybrid.clone()
    floor = hybrid.max() + 10
    order = judged.argsort(dim=1, descending=True)
    reordered.scatter_(
        1,
        top.indices.gather(1, order),
        floor + torch.arange(args.k, 0, -1, dtype=hybrid.dtype).expand(len(queries), -1),
    )
    labels = [
        next((j for j, d in enumerate(row) if d in rel), args.k) for row, rel in zip(top.indices.tolist(), relevant)
    ]
    return {
        "source": source,
        "queries": len(queries),
        "off": ndcg_recall(cosine, relevant)[0],
        "hybrid": ndcg_recall(hybrid, relevant)[0],
        "judged top k": ndcg_recall(reordered, relevant)[0],
        "relevant first, hybrid (%)": 100 * float(np.mean([label == 0 for label in labels])),
        "relevant first, judged (%)": 100
        * float(np.mean([label < args.k and order[i, 0].item() == label for i, label in enumerate(labels)])),
        "judge pairs/s": len(queries) * args.k / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-queries", type=int, default=1600)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--passage-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4, help="the judge's LoRA")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--max-dev-queries", type=int, default=0, help="first N dev queries per task (0: all)")
    args = parser.parse_args()

    from reading_probe import mean_table
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    torch.manual_seed(0)
    model = SentenceTransformer(str(install()), trust_remote_code=True, device="cpu")
    module = model[0]
    module.reasoning = False
    for param in module.parameters():
        param.requires_grad_(False)

    record = json.loads((FIRST_PASS / "final" / "reader_record.json").read_text())
    data = torch.load(FIRST_PASS / "first_pass.pt")
    texts, sizes = training_texts(record)
    if len(texts) != len(data["documents"]):
        raise ValueError(f"{len(texts)} corpus texts drawn again, {len(data['documents'])} in the cache")
    rows = training_candidates(data, sizes, args.k)
    rows = random.Random(0).sample(rows, min(args.train_queries, len(rows)))
    print(
        f"training queries {len(rows)}; the hybrid top {args.k} holds the relevant one for "
        f"{100 * np.mean([r['target'] < args.k and len(r['docs']) == args.k for r in rows]):.1f}%, first for "
        f"{100 * np.mean([r['target'] == 0 for r in rows]):.1f}%",
        flush=True,
    )

    module.reader = Reader.new(module.auto_model)
    judge = Judge(module.auto_model.config.hidden_size)
    baseline = hybrid_losses(rows, args.batch_size, judge)
    started = time.time()
    history = train(module, judge, rows, texts, args)
    train_seconds = time.time() - started
    for name, losses in (("judge", history), ("hybrid alone", baseline)):
        means = ", ".join(f"{np.mean(losses[i : i + 20]):.3f}" for i in range(0, len(losses), 20))
        print(f"{name}: loss (means of 20 steps) {means}", flush=True)
    print(f"trained in {train_seconds:.0f} s", flush=True)

    module.auto_model.eval()
    results = []
    for source in DEV_SOURCES:
        results.append(dev_row(model, judge, source, args))
        print(json.dumps(results[-1]), flush=True)
    means = mean_table(results, [key for key in results[0] if key not in ("source", "queries")])
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python " + shlex.join(sys.argv),
        "train_queries": len(rows),
        "train_seconds": round(train_seconds),
        "loss_history": history,
        "hybrid_loss_history": baseline,
        "scale": judge.log_scale.exp().item(),
        "rows": results,
        "mean": means,
    }
    (RESULTS / "judge_finetune.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
