"""The stage-2 reward: how well the embedding after a sampled reasoning ranks the relevant documents.

For one completion with embedding ``q``, searched against the cached corpus, with ``rank(d)`` the
1-based position of relevant document ``d`` among the top ``k`` (absent: no gain), and ``R`` the
relevant documents:

    ranking = DCG@k / IDCG@k = sum_{d in R, rank(d) <= k} 1 / log2(1 + rank(d))
                               / sum_{i=1}^{min(|R|, k)} 1 / log2(1 + i)
    format  = 1 if the completion ended with <|embed_token|> within the reasoning budget, else 0
    length  = - (reasoning tokens) / (reasoning budget)
    reward  = ranking_weight * ranking + format_weight * format + length_weight * length

The terms are separate TRL reward functions (each logged on its own); the weights are GRPO's
``reward_weights``. A completion that is ``<|embed_token|>`` alone ("no reasoning needed") is embedded as the
query's direct vector, so its ranking is the reasoning-off one: within a query's group GRPO then rewards a
reasoning by its gain over not reasoning (the trainer logs that gain), and ``length`` makes each token pay.

``ranking`` is nDCG@k in [0, 1]. ``k`` is deliberately larger than an evaluation cut-off (100 by default): a
relevant document moving from rank 90 to rank 40 is progress the policy should feel.

``ranking`` equals trec_eval's ``ndcg_cut`` (tests/test_reward.py checks it against pytrec_eval); it is two sums
here because a reward is computed per completion from a ranked id list, where pytrec_eval wants a score dict
per query and a new evaluator per qrels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def dcg_reward(ranked_ids: Sequence[int], relevant_ids: Sequence[int], k: int = 100) -> float:
    """nDCG@k of ``relevant_ids`` in ``ranked_ids`` (best first); 0.0 when none is in the top ``k``.

    Raises:
        ValueError: No relevant document, or ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    relevant = set(relevant_ids)
    if not relevant:
        raise ValueError("a query needs at least one relevant document")
    gain = sum(1.0 / math.log2(rank + 2) for rank, doc in enumerate(ranked_ids[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return gain / ideal


def format_reward(completion_ids: Sequence[int], embed_token_id: int, max_reasoning_tokens: int) -> float:
    """1.0 if the completion is at most ``max_reasoning_tokens`` of reasoning followed by the embed token."""
    emitted = len(completion_ids) > 0 and completion_ids[-1] == embed_token_id
    return float(emitted and len(completion_ids) - 1 <= max_reasoning_tokens)


def length_cost(completion_ids: Sequence[int], stop_ids: Sequence[int], max_reasoning_tokens: int) -> float:
    """Minus the share of the reasoning budget a completion used (its final stop token not counted)."""
    reasoning = len(completion_ids) - (1 if completion_ids and completion_ids[-1] in stop_ids else 0)
    return -min(reasoning, max_reasoning_tokens) / max_reasoning_tokens
