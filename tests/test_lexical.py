"""BM25 beside the dense search: the lexical index, the hybrid score, and search(..., lexical_weight=...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from st_search_r3.lexical import LexicalIndex, hybrid_scores


def test_bm25_scores_the_documents_that_share_the_querys_words(texts):
    corpus = texts["documents"]
    word = max(corpus[2].split(), key=len).strip(".,;:()")  # a long word of one document
    scores = LexicalIndex(corpus).scores([word, "", "the of and"])
    assert scores.shape == (3, len(corpus)) and scores.dtype == torch.float32
    assert scores[0].argmax().item() == 2 and scores[0, 2] > 0
    assert torch.count_nonzero(scores[1:]) == 0  # nothing to match: an empty query, stopwords only
    assert torch.count_nonzero(LexicalIndex(["", "the of"]).scores([word])) == 0  # no document has a word


def test_hybrid_scores_add_bounded_bm25_to_the_cosine():
    cosine = torch.tensor([[0.50, 0.49, 0.10], [0.3, 0.2, 0.1]])
    lexical = torch.tensor([[0.0, 7.0, 3.5], [0.0, 0.0, 0.0]])
    assert torch.equal(hybrid_scores(cosine, lexical, 0.0), cosine)
    fused = hybrid_scores(cosine, lexical, 0.1)
    torch.testing.assert_close(fused[0], torch.tensor([0.50, 0.59, 0.15]))
    assert torch.equal(fused[1], cosine[1])  # no lexical match: the cosine ranking stands
    with pytest.raises(ValueError, match="shape"):
        hybrid_scores(cosine, lexical[:, :2], 0.1)


def test_search_with_lexical_weight(tiny_model, texts):
    module = tiny_model[0]
    module.reasoning = False
    queries, corpus = texts["queries"], texts["documents"]
    plain = module.search(queries, corpus, top_k=3, reading=False)
    assert module.search(queries, corpus, top_k=3, reading=False, lexical_weight=0) == plain
    # A large weight lets the words decide: a query made of one document's long word finds that document first.
    word = max(corpus[4].split(), key=len).strip(".,;:()")
    assert module.search([word], corpus, reading=False, lexical_weight=10.0)[0][0]["corpus_id"] == 4
    hybrid = module.search(queries, corpus, top_k=3, reading=False, lexical_weight=0.1)
    documents = tiny_model.encode_document(corpus, convert_to_tensor=True)
    direct = tiny_model.encode_query(queries, convert_to_tensor=True)
    expected = hybrid_scores(direct @ documents.T, LexicalIndex(corpus).scores(queries), 0.1).topk(3, dim=1)
    assert [[h["corpus_id"] for h in row] for row in hybrid] == expected.indices.tolist()
    np.testing.assert_allclose([[h["score"] for h in row] for row in hybrid], expected.values.numpy(), atol=2e-5)
    single = [module.search([query], corpus, top_k=3, reading=False, lexical_weight=0.1)[0] for query in queries]
    assert [[h["corpus_id"] for h in row] for row in single] == [[h["corpus_id"] for h in row] for row in hybrid]
    for bad in (-0.1, "0.1", True, float("nan")):
        with pytest.raises(ValueError, match="lexical_weight"):
            module.search(queries, corpus, lexical_weight=bad)
