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


def test_reading_reads_what_the_hybrid_first_search_found(tiny_model, texts, monkeypatch):
    module = tiny_model[0]
    module.reasoning, module.read_top_k = False, 1
    corpus = texts["documents"]
    word = max(corpus[4].split(), key=len).strip(".,;:()")
    read, embed = [], module.embed

    def spy(items, **kwargs):
        read.extend(item for item in items if isinstance(item, tuple))
        return embed(items, **kwargs)

    monkeypatch.setattr(module, "embed", spy)
    # With a large weight BM25 decides both searches: the passage read is the one holding the word.
    hits = module.search([word], corpus, reading=True, lexical_weight=10.0)
    assert read == [(word, [corpus[4]])] and hits[0][0]["corpus_id"] == 4


def test_reader_loss_ranks_by_the_cosine_plus_what_bm25_adds():
    from st_search_r3.training.reader_training import reader_loss

    read, documents = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = reader_loss(read, documents, [[1]], temperature=1.0)
    helped = reader_loss(read, documents, [[1]], temperature=1.0, lexical=torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(plain, torch.log1p(torch.exp(torch.tensor(1.0))))
    torch.testing.assert_close(helped, torch.log(torch.tensor(2.0)))  # BM25 levels the two documents
    assert reader_loss(read, documents, [[1]], 1.0, lexical=torch.zeros(1, 2)) == plain
