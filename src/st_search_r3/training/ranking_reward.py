"""Stage 2's reward: how well the embedding after each sampled reasoning retrieves the query's documents."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer

from st_search_r3.embedding import fuse, last_token_embedding, left_pad
from st_search_r3.training.corpus_index import CorpusIndex
from st_search_r3.training.reward import dcg_reward


class RankingReward:
    """A GRPO reward function: TRL calls it with each completion's prompt, token ids and dataset columns.

    It embeds every completion with the current policy as inference embeds it (the query's prompt, the
    reasoning, ``<|embed_token|>``; a completion that is the token alone takes the query's direct vector, as
    ``reasoning="auto"`` does; with ``fuse_direct_embedding`` the others are fused with it), refreshes the
    cached corpus once per step, and returns nDCG@``k`` of each query's ``relevant_ids`` among it. It logs
    ``corpus/*`` (what the refresh did) and ``gain_over_direct`` (mean nDCG minus the direct vectors').

    Being an ordinary reward function, it works with every generation path of TRL's ``GRPOTrainer``
    (transformers or vLLM, colocated or served): it needs the completions' token ids, not the generator.

    Args:
        model: The search-r3 SentenceTransformer whose first module holds the policy (``auto_model``).
        corpus: The cached corpus, encoded with ``model``'s documents path.
        k: Depth of the ranking.
    """

    def __init__(self, model: SentenceTransformer, corpus: CorpusIndex, k: int = 100) -> None:
        self.__name__ = "ranking_reward"  # the name TRL logs it under (rewards/ranking_reward/mean)
        self.model = model
        self.corpus = corpus
        self.k = k

    def __call__(self, prompts, completion_ids, relevant_ids, trainer_state, log_metric=None, **kwargs) -> list[float]:
        queries = [prompt[-1]["content"] for prompt in prompts]
        direct = self.direct_embeddings(queries)
        vectors = self.embed_completions(queries, completion_ids, direct)
        touched = sorted({doc for ids in relevant_ids for doc in ids})
        with self.policy_mode_kept():  # refreshing encodes documents with the policy itself
            refreshed = self.corpus.refresh(trainer_state.global_step, touched)
        rewards = self.ndcg(vectors, relevant_ids)
        if log_metric is not None:
            for name, value in refreshed.items():
                log_metric(f"corpus/{name}", value)
            log_metric("gain_over_direct", float(np.mean(rewards) - np.mean(self.ndcg(direct, relevant_ids))))
        return rewards

    @contextmanager
    def policy_mode_kept(self):
        """Restores the policy's train/eval mode after encoding with it (``encode()`` switches it to eval)."""
        was_training = self.model.training
        try:
            yield
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def direct_embeddings(self, queries: list[str]) -> np.ndarray:
        """Unit vectors of the queries without reasoning, from the current policy (each distinct query once)."""
        distinct = list(dict.fromkeys(queries))
        with self.policy_mode_kept():
            vectors = self.model.encode_query(distinct, reasoning=False, normalize_embeddings=True)
        row = {query: i for i, query in enumerate(distinct)}
        return vectors[[row[query] for query in queries]]

    @torch.no_grad()
    def embed_completions(
        self, queries: list[str], completion_ids: list[list[int]], direct: np.ndarray | None = None
    ) -> np.ndarray:
        """Unit vectors at ``<|embed_token|>`` after each completion's reasoning, from the current policy; given
        ``direct`` (:meth:`direct_embeddings`), a completion that is the embed token alone takes its query's
        direct vector, and with ``fuse_direct_embedding`` the others are fused with it."""
        module = self.model[0]
        stops = set(module.stop_token_ids())
        sequences = []
        for query, completion in zip(queries, completion_ids, strict=True):
            reasoning = completion[:-1] if completion and completion[-1] in stops else completion
            reasoning = list(reasoning[: module.max_reasoning_tokens])
            sequences.append(module.query_prompt_ids(query) + reasoning + [module.embed_token_id])
        llm = module.auto_model
        input_ids, attention_mask = left_pad(sequences, module.tokenizer.pad_token_id, llm.device)
        vectors = F.normalize(last_token_embedding(llm, input_ids, attention_mask).float(), dim=-1).cpu()
        if direct is None:
            return vectors.numpy()
        direct = torch.from_numpy(direct)
        if module.fuse_direct_embedding:
            vectors = F.normalize(fuse(vectors, direct), dim=-1)
        at_once = torch.tensor([list(c) == [module.embed_token_id] for c in completion_ids])
        vectors[at_once] = direct[at_once]
        return vectors.numpy()

    def ndcg(self, vectors: np.ndarray, relevant_ids) -> list[float]:
        """nDCG@k of each vector's relevant documents in the cached corpus."""
        _, ranked = self.corpus.search(np.ascontiguousarray(vectors, dtype=np.float32), self.k)
        return [dcg_reward(row.tolist(), ids, self.k) for row, ids in zip(ranked, relevant_ids, strict=True)]
