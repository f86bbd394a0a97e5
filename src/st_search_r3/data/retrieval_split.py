"""A retrieval split on disk: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.jsonl`` in one folder."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from st_search_r3.atomic import staged_file

SPLITS = ("train", "dev", "test")


@dataclass
class RetrievalSplit:
    """Queries, documents and which documents answer which query.

    Args:
        corpus: Document id to text.
        queries: Query id to text.
        qrels: Query id to ``{document id: relevance}``.
        groups: Query id to the unit it was split by (synset, package, function), for leakage checks.
    """

    corpus: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    def add_pair(self, query_id: str, query: str, document_id: str, document: str, group: str) -> None:
        """Adds one query with its one relevant document; ``group`` is the unit the split was drawn by."""
        self.queries[query_id] = query
        self.corpus[document_id] = document
        self.qrels[query_id] = {document_id: 1}
        self.groups[query_id] = group

    def save(self, folder: str | Path) -> None:
        """Writes the three files, each whole or not at all (:func:`st_search_r3.atomic.staged_file`)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_jsonl(folder / "corpus.jsonl", ({"id": i, "text": t} for i, t in self.corpus.items()))
        _write_jsonl(
            folder / "queries.jsonl",
            ({"id": i, "text": t, "group": self.groups.get(i, i)} for i, t in self.queries.items()),
        )
        _write_jsonl(
            folder / "qrels.jsonl",
            ({"query-id": q, "corpus-id": d, "score": s} for q, docs in self.qrels.items() for d, s in docs.items()),
        )

    @classmethod
    def load(cls, folder: str | Path) -> RetrievalSplit:
        folder = Path(folder)
        if not (folder / "qrels.jsonl").is_file():
            raise FileNotFoundError(f"No retrieval split in {folder} (expected corpus/queries/qrels.jsonl)")
        split = cls()
        for row in _read_jsonl(folder / "corpus.jsonl"):
            split.corpus[row["id"]] = row["text"]
        for row in _read_jsonl(folder / "queries.jsonl"):
            split.queries[row["id"]] = row["text"]
            split.groups[row["id"]] = row.get("group", row["id"])
        for row in _read_jsonl(folder / "qrels.jsonl"):
            split.qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
        return split

    def sample(self, num_queries: int, num_documents: int, seed: int) -> RetrievalSplit:
        """A smaller split: ``num_queries`` queries, their relevant documents, and random distractors."""
        rng = random.Random(seed)
        query_ids = sorted(self.queries)
        rng.shuffle(query_ids)
        query_ids = sorted(query_ids[:num_queries])
        relevant = {d for q in query_ids for d in self.qrels[q]}
        others = sorted(set(self.corpus) - relevant)
        rng.shuffle(others)
        document_ids = sorted(relevant) + sorted(others[: max(0, num_documents - len(relevant))])
        return RetrievalSplit(
            corpus={d: self.corpus[d] for d in document_ids},
            queries={q: self.queries[q] for q in query_ids},
            qrels={q: self.qrels[q] for q in query_ids},
            groups={q: self.groups.get(q, q) for q in query_ids},
        )


def assign_split(group: str, seed: int, dev_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a group by a hash of (seed, group): the same group always lands together."""
    value = int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:12], 16) / 16**12
    if value < test_fraction:
        return "test"
    if value < test_fraction + dev_fraction:
        return "dev"
    return "train"


def _write_jsonl(path: Path, rows) -> None:
    with staged_file(path) as staging, open(staging, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
