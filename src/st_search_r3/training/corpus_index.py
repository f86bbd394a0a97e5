"""The RL environment (stage 2's corpus side): corpus embeddings cached in a faiss index, refreshed incrementally.

Re-encoding the whole corpus after every policy update would make an RL step cost grow with the corpus.
Instead every document vector is cached with the step it was computed at, and each step refreshes
only the documents it touched (the relevant ones of its queries) plus the next rolling slice of the
corpus, so every vector is at most ``len(corpus) / refresh_size`` steps old. Refreshed documents are
compared with their cached vectors: the mean cosine drift tells how stale the cache has become.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
from accelerate import PartialState
from accelerate.utils import gather_object

from st_search_r3.atomic import staged_folder

logger = logging.getLogger(__name__)

Encoder = Callable[[list[str]], np.ndarray]


class CorpusIndex:
    """Document vectors of the current policy, searchable by inner product (cosine on unit vectors).

    Args:
        doc_ids: Integer id of every document (faiss returns these).
        texts: The documents, in the order of ``doc_ids``.
        encode: ``texts -> float32 array (n, dim)`` of unit vectors, with the current policy.
        refresh_size: Documents of the rolling slice re-encoded per step.
        batch_size: Documents encoded together.
    """

    def __init__(
        self,
        doc_ids: Sequence[int],
        texts: Sequence[str],
        encode: Encoder,
        refresh_size: int = 32,
        batch_size: int = 32,
    ) -> None:
        if len(doc_ids) != len(texts) or len(texts) == 0:
            raise ValueError(f"Expected as many ids as texts (at least one), got {len(doc_ids)} and {len(texts)}")
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError("Document ids must be unique")
        self.doc_ids = np.asarray(doc_ids, dtype=np.int64)
        self.texts = list(texts)
        self.encode = encode
        self.refresh_size = refresh_size
        self.batch_size = batch_size
        self.position = {int(doc_id): i for i, doc_id in enumerate(self.doc_ids)}
        self.vectors: np.ndarray | None = None
        self.refreshed_at = np.zeros(len(texts), dtype=np.int64)  # step each vector was computed at
        self.cursor = 0  # where the next rolling slice starts
        self.last_step: int | None = None
        self.index: faiss.IndexIDMap2 | None = None

    def __len__(self) -> int:
        return len(self.texts)

    # ------------------------------------------------------------------------------------- encoding

    def _encode(self, positions: np.ndarray) -> np.ndarray:
        """Vectors of the documents at ``positions``. With several processes each encodes every ``world size``-th
        of them and all gather the rest, so that every rank holds the same vectors for a share of the work."""
        state = PartialState()
        rank, size = state.process_index, state.num_processes
        mine = positions[rank::size]
        vectors = [
            np.asarray(self.encode([self.texts[i] for i in mine[start : start + self.batch_size]]), np.float32)
            for start in range(0, len(mine), self.batch_size)
        ]
        vectors = np.concatenate(vectors) if vectors else None
        if size == 1:
            return vectors if vectors is not None else np.zeros((0, self.vectors.shape[1]), np.float32)
        parts = [(rows, part) for rows, part in gather_object([(mine, vectors)]) if part is not None]
        gathered = np.zeros((len(positions), parts[0][1].shape[1]), np.float32)
        order = {int(position): i for i, position in enumerate(positions)}
        for rows, part in parts:
            gathered[[order[int(position)] for position in rows]] = part
        return gathered

    def build(self, step: int = 0) -> None:
        """Encodes every document with the current policy and indexes it."""
        logger.info("Encoding the whole corpus (%d documents) at step %d", len(self), step)
        self._set(np.arange(len(self)), self._encode(np.arange(len(self))), step)

    def prime(self, vectors: np.ndarray, step: int = 0) -> None:
        """Fills the cache with vectors computed elsewhere (one unit row per document, in ``doc_ids`` order)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(self):
            raise ValueError(f"Expected {len(self)} vector rows, got shape {vectors.shape}")
        self.vectors = None
        self._set(np.arange(len(self)), vectors, step)

    def _set(self, positions: np.ndarray, vectors: np.ndarray, step: int) -> None:
        if self.vectors is None:
            self.vectors = np.zeros((len(self), vectors.shape[1]), np.float32)
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
        ids = self.doc_ids[positions]
        self.index.remove_ids(ids)
        self.index.add_with_ids(vectors, ids)
        self.vectors[positions] = vectors
        self.refreshed_at[positions] = step

    def refresh(self, step: int, touched_ids: Sequence[int] = ()) -> dict[str, float]:
        """Brings the cache up to ``step``: the touched documents and the next rolling slice (the whole corpus
        on the first call). Called again for the same step it does nothing.

        Returns:
            ``refreshed`` (documents re-encoded), ``rebuilt`` (1 on the first build), ``drift`` and
            ``drift_max``: mean and largest ``1 - cos(cached, fresh)`` over the re-encoded documents, and
            ``staleness``: mean steps since each document's vector was computed, after the refresh.
        """
        if self.vectors is None:
            self.build(step)
            return {"refreshed": len(self), "rebuilt": 1.0, "drift": 0.0, "drift_max": 0.0, "staleness": 0.0}
        if step == self.last_step:
            return {}
        self.last_step = step
        # Every rank refreshes what any rank's queries touched, so the index stays the same everywhere.
        touched_ids = sorted({int(doc) for ids in gather_object([[int(doc) for doc in touched_ids]]) for doc in ids})
        unknown = [doc for doc in touched_ids if int(doc) not in self.position]
        if unknown:
            raise KeyError(f"Documents not in the corpus: {unknown[:5]}")
        rolling = (self.cursor + np.arange(min(self.refresh_size, len(self)))) % len(self)
        self.cursor = int((self.cursor + len(rolling)) % len(self))
        touched = np.array([self.position[int(doc)] for doc in touched_ids], dtype=np.int64)
        positions = np.unique(np.concatenate([touched, rolling]))
        fresh = self._encode(positions)
        drift = 1.0 - np.sum(self.vectors[positions] * fresh, axis=1)
        self._set(positions, fresh, step)
        return {
            "refreshed": float(len(positions)),
            "rebuilt": 0.0,
            "drift": float(drift.mean()),
            "drift_max": float(drift.max()),
            "staleness": float(np.mean(step - self.refreshed_at)),
        }

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, doc_ids)`` of the ``k`` best documents per query row (best first)."""
        if self.index is None:
            raise RuntimeError("The index is empty: call build() or refresh() first")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"Expected queries of shape (n, {self.vectors.shape[1]}), got {queries.shape}")
        return self.index.search(queries, min(k, len(self)))

    # ---------------------------------------------------------------------------------- save / load

    def save(self, folder: str | Path) -> None:
        """Writes vectors, ids and refresh state into ``folder`` (complete or absent: staged, then renamed)."""
        with staged_folder(folder) as staging:
            np.save(staging / "vectors.npy", self.vectors)
            np.save(staging / "doc_ids.npy", self.doc_ids)
            np.save(staging / "refreshed_at.npy", self.refreshed_at)
            state = {"cursor": self.cursor, "last_step": self.last_step}
            (staging / "state.json").write_text(json.dumps(state))

    def load(self, folder: str | Path) -> None:
        """Restores what :meth:`save` wrote, for the same corpus (ids must match)."""
        folder = Path(folder)
        doc_ids = np.load(folder / "doc_ids.npy")
        if not np.array_equal(doc_ids, self.doc_ids):
            raise ValueError(f"{folder} holds another corpus ({len(doc_ids)} ids, {len(self)} expected)")
        self.prime(np.load(folder / "vectors.npy"))
        self.refreshed_at = np.load(folder / "refreshed_at.npy")
        state = json.loads((folder / "state.json").read_text())
        self.cursor, self.last_step = state["cursor"], state["last_step"]
