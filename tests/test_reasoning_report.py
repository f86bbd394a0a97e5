"""benchmarks/reasoning_report.py: its nDCG@10 is the reward's (trec_eval's) over all relevant documents."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def report():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("reasoning_report", ROOT / "benchmarks" / "reasoning_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ndcg_counts_every_relevant_document_as_pytrec_eval_does(report):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(0)
    queries, documents = rng.normal(size=(6, 8)), rng.normal(size=(40, 8))
    relevant = [[0], [1, 2], [3, 4, 5], [39], [10, 20], [7]]
    scores = queries @ documents.T
    ours = report.ndcg_at_10(scores, relevant)
    run = {str(q): {str(d): float(scores[q, d]) for d in range(40)} for q in range(6)}
    qrels = {str(q): {str(d): 1 for d in rows} for q, rows in enumerate(relevant)}
    theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert np.allclose(ours, [theirs[str(q)]["ndcg_cut_10"] for q in range(6)])


def test_rank_is_that_of_the_best_placed_relevant_document(report):
    queries = np.array([[1.0, 0.0]])
    documents = np.array([[0.9, 0.1], [0.5, 0.5], [1.0, 0.0]])
    scores = queries @ documents.T
    assert report.ranks(scores, [[1, 2]]) == [1]
    assert report.ranks(scores, [[1]]) == [3]
