from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from st_search_r3.data.demo import demo_split
from st_search_r3.indexing import encode_corpus


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return list(demo_split().corpus.values())[:10]


class Interrupted(RuntimeError):
    pass


def test_an_interrupted_build_continues_where_it_stopped(tiny_model, documents, tmp_path, monkeypatch):
    expected = tiny_model.encode_document(documents, convert_to_numpy=True)
    calls = []
    encode = tiny_model.encode_document

    def encode_then_die_on_the_second_shard(texts, **kwargs):
        calls.append(list(texts))
        if len(calls) == 2:
            raise Interrupted
        return encode(texts, **kwargs)

    monkeypatch.setattr(tiny_model, "encode_document", encode_then_die_on_the_second_shard)
    with pytest.raises(Interrupted):
        encode_corpus(tiny_model, documents, tmp_path, shard_size=4, show_progress_bar=False)
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-000000.npy"]
    assert not list(tmp_path.glob(".*"))  # no half-written shard left behind

    calls.clear()
    monkeypatch.setattr(
        tiny_model, "encode_document", lambda texts, **kwargs: calls.append(texts) or encode(texts, **kwargs)
    )
    vectors = encode_corpus(tiny_model, documents, tmp_path, shard_size=4, show_progress_bar=False)
    assert calls == [documents[4:8], documents[8:10]]  # the first shard was not encoded again
    assert vectors.shape == (10, tiny_model.get_embedding_dimension())
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)

    calls.clear()
    np.testing.assert_array_equal(encode_corpus(tiny_model, documents, tmp_path, shard_size=4), vectors)
    assert calls == []


def test_a_cache_of_another_corpus_or_model_is_refused(tiny_model, documents, tmp_path):
    encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2, show_progress_bar=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["documents"] == 3 and manifest["shard_size"] == 2
    with pytest.raises(ValueError, match="corpus_sha256"):
        encode_corpus(tiny_model, [documents[0], documents[2], documents[1]], tmp_path, shard_size=2)
    with pytest.raises(ValueError, match="shard_size"):
        encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=3)
    with pytest.raises(ValueError, match="model"):
        encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2, model_id="another/revision")


@pytest.mark.parametrize(
    ("bad", "error"), [("one text", TypeError), ([], ValueError), (None, TypeError)], ids=["str", "empty", "none"]
)
def test_bad_corpora_get_a_clear_error(tiny_model, tmp_path, bad, error):
    with pytest.raises(error):
        encode_corpus(tiny_model, bad, tmp_path)


def test_the_default_model_id_follows_the_weights_not_the_class(tiny_model, documents, tmp_path):
    from st_search_r3.indexing import model_identity
    from st_search_r3.reader import Reader
    from st_search_r3.stop_head import StopHead

    encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2, show_progress_bar=False)
    module = tiny_model[0]
    module.reasoning, module.read_top_k = False, 7  # query-side settings: the index still fits
    encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2, show_progress_bar=False)
    module.reader = Reader.new(module.auto_model, r=2, alpha=4)  # a reader leaves documents as they are
    module.stop_head = StopHead.from_lm_head(module.auto_model.get_output_embeddings(), module.embed_token_id)
    identity = model_identity(tiny_model)  # and so does a stop head
    encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2, show_progress_bar=False)
    with torch.no_grad():  # a fine-tuned model (one weight moved) is another model
        module.auto_model.get_input_embeddings().weight[0, 0] += 1e-3
    assert model_identity(tiny_model) != identity
    with pytest.raises(ValueError, match="model"):
        encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2)
    module.max_seq_length = 100  # a setting that reaches documents
    with pytest.raises(ValueError, match="model"):
        encode_corpus(tiny_model, documents[:3], tmp_path, shard_size=2)


def test_a_corpus_split_over_two_processes_gives_the_vectors_of_one(tiny_model, documents, tmp_path):
    """encode_corpus with sentence-transformers' multi-process pool (one process per device; two CPU processes
    here): each shard is split between them. Plain encode_document with a pool: tests/test_module.py."""
    one = tiny_model.encode_document(documents)
    pool = tiny_model.start_multi_process_pool(["cpu", "cpu"])
    try:
        sharded = encode_corpus(tiny_model, documents, tmp_path, shard_size=4, show_progress_bar=False, pool=pool)
    finally:
        tiny_model.stop_multi_process_pool(pool)
    np.testing.assert_allclose(sharded, one, rtol=1e-5, atol=1e-6)
