import math

import pytest

from st_search_r3.training.reward import dcg_reward, format_reward


def test_dcg_reward_is_ndcg_at_k():
    assert dcg_reward([7, 3, 5], relevant_ids=[7]) == 1.0
    assert dcg_reward([3, 7, 5], relevant_ids=[7]) == pytest.approx(1 / math.log2(3))
    assert dcg_reward([3, 5, 7], relevant_ids=[7], k=2) == 0.0  # below the cut-off: no gain
    # Two relevant documents at ranks 1 and 3 against the ideal ranks 1 and 2.
    ideal = 1 + 1 / math.log2(3)
    assert dcg_reward([7, 3, 5], relevant_ids=[7, 5]) == pytest.approx((1 + 1 / math.log2(4)) / ideal)


def test_dcg_reward_rejects_queries_without_relevant_documents():
    with pytest.raises(ValueError, match="relevant"):
        dcg_reward([1, 2], relevant_ids=[])
    with pytest.raises(ValueError, match="k must be"):
        dcg_reward([1, 2], relevant_ids=[1], k=0)


def test_format_reward_wants_the_token_within_the_budget():
    embed = 99
    assert format_reward([5, 6, embed], embed, max_reasoning_tokens=2) == 1.0
    assert format_reward([5, 6, 7, embed], embed, max_reasoning_tokens=2) == 0.0  # over budget
    assert format_reward([5, 6, 2], embed, max_reasoning_tokens=8) == 0.0  # ended on EOS instead
    assert format_reward([embed], embed, max_reasoning_tokens=8) == 1.0
    assert format_reward([], embed, max_reasoning_tokens=8) == 0.0


def test_dcg_reward_equals_trec_eval_ndcg_cut():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    import random

    generator = random.Random(0)
    for k in (1, 5, 10):
        for _ in range(50):
            ranked = generator.sample(range(40), 20)
            relevant = generator.sample(range(40), generator.randint(1, 4))
            run = {"q": {str(doc): float(len(ranked) - rank) for rank, doc in enumerate(ranked)}}
            qrels = {"q": {str(doc): 1 for doc in relevant}}
            expected = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}"}).evaluate(run)["q"][f"ndcg_cut_{k}"]
            assert dcg_reward(ranked, relevant, k=k) == pytest.approx(expected, abs=1e-6)
