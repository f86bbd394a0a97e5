"""The calls LangChain, LlamaIndex and Chroma make, replayed against an installed model: each client's query and
document vectors must be what ``encode_query`` / ``encode_document`` give, with reasoning off and on.

The client packages pin versions this project's cannot take beside its own (langchain-huggingface 1.2.3 wants
huggingface-hub < 2), so their calls are replayed here as their sources make them; each is quoted with its file.
"""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from st_search_r3.install import install, link_into
from st_search_r3.settings import SIDE_MARKERS


@pytest.fixture
def installed(tiny_llm, tmp_path, monkeypatch):
    """The tiny LLM installed as ``search-r3`` in a fresh hub cache, reasoning short enough for a test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    folder = install(tiny_llm)
    monkeypatch.chdir(tmp_path)
    return folder


QUERIES = ["a large wild cat with a mane", "compress a file\nwith gzip"]
DOCUMENTS = ["lion, king of beasts, Panthera leo.", "gzip reduces the size of files.\nIt uses LZ77."]


def expected(model: SentenceTransformer, queries: list[str], documents: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return model.encode_query(queries), model.encode_document(documents)


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("reasoning", [False, True])
def test_langchain_with_query_encode_kwargs(installed, reasoning):
    # langchain_huggingface 1.2.3, embeddings/huggingface.py:
    #   79: self._client = model_cls(self.model_name, cache_folder=self.cache_folder, **self.model_kwargs)
    #  106: texts = [x.replace("\n", " ") for x in texts]
    #  112: embeddings = self._client.encode(texts, show_progress_bar=self.show_progress, **encode_kwargs)
    #  137: embed_documents -> self._embed(texts, self.encode_kwargs)
    #  149: embed_query -> self._embed([text], self.query_encode_kwargs or self.encode_kwargs)[0]
    client = SentenceTransformer("search-r3", cache_folder=None, trust_remote_code=True)
    client[0].reasoning, client[0].max_reasoning_tokens = reasoning, 8
    encode_kwargs, query_encode_kwargs = {"prompt_name": "document"}, {"prompt_name": "query"}
    queries = [x.replace("\n", " ") for x in QUERIES]
    documents = [x.replace("\n", " ") for x in DOCUMENTS]
    query_vectors = np.stack([client.encode([q], show_progress_bar=False, **query_encode_kwargs)[0] for q in queries])
    document_vectors = client.encode(documents, show_progress_bar=False, **encode_kwargs)
    want_queries, want_documents = expected(client, queries, documents)
    assert cosines(query_vectors, want_queries).min() > 0.999999
    assert cosines(document_vectors, want_documents).min() > 0.999999
    if reasoning:  # without query_encode_kwargs, LangChain's queries are documents: what the docs warn of
        plain = client.encode(queries[:1], show_progress_bar=False, **encode_kwargs)
        assert cosines(plain, want_queries[:1]).max() < 0.9999


@pytest.mark.parametrize("reasoning", [False, True])
def test_llamaindex_with_side_instructions(installed, tmp_path, reasoning):
    # llama_index.embeddings.huggingface 0.8.0, base.py:
    #  145: cache_folder = cache_folder or get_cache_dir()
    #  160: model = SentenceTransformer(model_name, device=device, cache_folder=cache_folder,
    #           trust_remote_code=trust_remote_code,
    #           prompts={"query": query_instruction or ..., "text": text_instruction or ...}, **model_kwargs)
    #  236: emb = self._model.encode(inputs, batch_size=self.embed_batch_size, prompt_name=prompt_name,
    #           normalize_embeddings=self.normalize, show_progress_bar=self.show_progress_bar)
    #  281: _get_query_embedding -> self._embed([query], prompt_name="query")[0]
    #  333: _get_text_embeddings -> self._embed(texts, prompt_name="text")
    cache_folder = tmp_path / "llama_index"  # a cache folder of the client's own: the model is linked into it
    link_into(cache_folder, installed)
    model = SentenceTransformer(
        "search-r3",
        device="cpu",
        cache_folder=str(cache_folder),
        trust_remote_code=True,
        prompts={"query": SIDE_MARKERS["query"], "text": SIDE_MARKERS["document"]},
    )
    model[0].reasoning, model[0].max_reasoning_tokens = reasoning, 8
    query_vectors = np.stack(
        [
            model.encode([q], batch_size=10, prompt_name="query", normalize_embeddings=True, show_progress_bar=False)[0]
            for q in QUERIES
        ]
    )
    document_vectors = model.encode(
        DOCUMENTS, batch_size=10, prompt_name="text", normalize_embeddings=True, show_progress_bar=False
    )
    want_queries, want_documents = expected(model, QUERIES, DOCUMENTS)
    assert cosines(query_vectors, want_queries).min() > 0.999999
    assert cosines(document_vectors, want_documents).min() > 0.999999


def test_chroma_sends_no_side(installed):
    # chromadb 1.5.9, utils/embedding_functions/sentence_transformer_embedding_function.py:
    #   44: self.models[model_name] = SentenceTransformer(model_name_or_path=model_name, device=device, **kwargs)
    #   58: embeddings = self._model.encode(list(input), convert_to_numpy=True,
    #           normalize_embeddings=self.normalize_embeddings)
    # and embed_query is not overridden, so queries take the same call (api/types.py:848).
    model = SentenceTransformer(model_name_or_path="search-r3", device="cpu", trust_remote_code=True)
    model[0].max_reasoning_tokens = 8
    for reasoning in (False, True):
        model[0].reasoning = reasoning
        vectors = model.encode(QUERIES, convert_to_numpy=True, normalize_embeddings=False)
        assert cosines(vectors, model.encode_document(QUERIES)).min() > 0.999999  # always the document side
    model[0].reasoning = False  # the shipped setting: queries and documents coincide, so Chroma is right
    assert cosines(model.encode(QUERIES), model.encode_query(QUERIES)).min() > 0.999999


def test_cache_folder_of_a_client_finds_the_installed_model(installed, tmp_path):
    with pytest.raises(OSError):  # not linked: the hub lookup fails offline
        SentenceTransformer("search-r3", cache_folder=str(tmp_path / "elsewhere"), trust_remote_code=True)
    linked = link_into(tmp_path / "elsewhere", installed)
    assert linked.resolve() == installed.resolve() and link_into(tmp_path / "elsewhere", installed) == linked
    model = SentenceTransformer("search-r3", cache_folder=str(tmp_path / "elsewhere"), trust_remote_code=True)
    np.testing.assert_array_equal(
        model.encode_document(DOCUMENTS),
        SentenceTransformer(str(installed), trust_remote_code=True).encode_document(DOCUMENTS),
    )
