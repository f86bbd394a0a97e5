import numpy as np
import pytest

from st_search_r3.training.corpus_index import CorpusIndex


class CountingEncoder:
    """Unit vectors that depend on the text and on a `version` standing for the policy's weights."""

    def __init__(self, dim: int = 8) -> None:
        self.dim, self.version, self.encoded = dim, 0, []

    def __call__(self, texts):
        self.encoded.extend(texts)
        rows = [np.random.default_rng(abs(hash((t, self.version))) % 2**32).normal(size=self.dim) for t in texts]
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_index(n=10, **kwargs):
    encoder = CountingEncoder()
    texts = [f"doc {i}" for i in range(n)]
    return CorpusIndex([100 + i for i in range(n)], texts, encoder, batch_size=3, **kwargs), encoder, texts


def test_search_finds_a_document_by_its_own_vector_and_returns_ids():
    index, encoder, texts = make_index()
    index.refresh(step=0)
    scores, ids = index.search(encoder([texts[4]]), k=3)
    assert ids[0, 0] == 104 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="shape"):
        index.search(np.zeros((2, 3), np.float32), k=3)


def test_refresh_re_encodes_the_touched_documents_and_a_rolling_slice_only():
    index, encoder, texts = make_index(refresh_size=2)
    index.refresh(step=0)
    encoder.encoded.clear()
    encoder.version = 1
    stats = index.refresh(step=1, touched_ids=[107])
    assert sorted(encoder.encoded) == ["doc 0", "doc 1", "doc 7"]
    assert stats["refreshed"] == 3 and stats["rebuilt"] == 0.0 and 0 < stats["drift"] <= stats["drift_max"]
    assert index.refresh(step=1, touched_ids=[107]) == {}  # once per step
    encoder.encoded.clear()
    index.refresh(step=2)
    assert sorted(encoder.encoded) == ["doc 2", "doc 3"]  # the slice rolls on
    # The refreshed vectors replaced the cached ones in faiss: each is found by its new vector.
    scores, ids = index.search(encoder([texts[7]]), k=1)
    assert ids[0, 0] == 107 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.index.ntotal == len(texts)
    with pytest.raises(KeyError):
        index.refresh(step=3, touched_ids=[999])


def test_save_and_load_restore_vectors_and_refresh_state(tmp_path):
    index, encoder, texts = make_index(refresh_size=2)
    index.refresh(step=0)
    index.refresh(step=1, touched_ids=[105])
    index.save(tmp_path / "cache")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
    restored, _, _ = make_index(refresh_size=2)
    restored.load(tmp_path / "cache")
    np.testing.assert_array_equal(restored.vectors, index.vectors)
    np.testing.assert_array_equal(restored.refreshed_at, index.refreshed_at)
    assert restored.cursor == index.cursor and restored.last_step == 1
    query = encoder([texts[3]])
    np.testing.assert_array_equal(restored.search(query, 5)[1], index.search(query, 5)[1])
    other = CorpusIndex([1, 2], ["a", "b"], encoder)
    with pytest.raises(ValueError, match="another corpus"):
        other.load(tmp_path / "cache")


def test_bad_corpus_is_rejected():
    with pytest.raises(ValueError):
        CorpusIndex([1, 2], ["only one"], CountingEncoder())
    with pytest.raises(ValueError, match="unique"):
        CorpusIndex([1, 1], ["a", "b"], CountingEncoder())
    with pytest.raises(RuntimeError, match="empty"):
        CorpusIndex([1], ["a"], CountingEncoder()).search(np.zeros((1, 8), np.float32), 1)
