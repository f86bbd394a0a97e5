"""Reasoning that reads: the read prompt, the reader adapter, both passes of search(), and training the reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import semantic_search

from st_search_r3 import SearchR3
from st_search_r3.reader import Reader
from st_search_r3.reading import PASSAGES_HEADER, read_prompt_ids
from tests.conftest import run_train_script


def with_reader(model: SentenceTransformer, seed: int = 0) -> Reader:
    """A reader whose LoRA is not zero (a fresh one starts as the model itself)."""
    module = model[0]
    module.reader = Reader.new(module.auto_model, r=4, alpha=8)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.reader.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return module.reader


def read_inputs(texts, k: int = 2):
    queries, documents = texts["queries"], texts["documents"]
    return [(query, documents[i : i + k]) for i, query in enumerate(queries)]


def test_read_prompt_holds_query_and_passage_heads(tiny_model):
    module = tiny_model[0]
    ids = read_prompt_ids(module.prompts, "a big cat", ["lion " * 100, "tiger"], module.reading_prompt, 5, 4)
    text = module.tokenizer.decode(ids)
    assert module.reading_prompt in text and "a big cat" in text and PASSAGES_HEADER.strip() in text
    assert "[1] lion lion" in text and "[2] tiger" in text
    assert text.count("lion") <= 5  # the passage is cut to its head
    none = module.tokenizer.decode(read_prompt_ids(module.prompts, "a big cat", [], module.reading_prompt, 5, 4))
    assert PASSAGES_HEADER.strip() not in none


def test_read_vectors_batch_equals_one_by_one(tiny_model, texts):
    with_reader(tiny_model)
    inputs = read_inputs(texts)
    batched = tiny_model.encode_query(inputs, batch_size=4)
    single = np.stack([tiny_model.encode_query([item])[0] for item in inputs])
    np.testing.assert_allclose(batched, single, atol=2e-5)


def test_reader_leaves_documents_and_direct_queries_bit_identical(tiny_model, texts):
    tiny_model[0].reasoning = False
    inputs = read_inputs(texts)
    documents = tiny_model.encode_document(texts["documents"])
    queries = tiny_model.encode_query(texts["queries"])
    read_without = tiny_model.encode_query(inputs)
    with_reader(tiny_model)
    assert np.array_equal(tiny_model.encode_document(texts["documents"]), documents)
    assert np.array_equal(tiny_model.encode_query(texts["queries"]), queries)
    read_with = tiny_model.encode_query(inputs)
    assert np.abs(read_with - read_without).max() > 1e-3  # the reader is on for read prompts only


def test_reader_round_trip(tiny_model, texts, tmp_path):
    with_reader(tiny_model)
    inputs = read_inputs(texts)
    before = tiny_model.encode_query(inputs)
    tiny_model.save(str(tmp_path))
    assert (tmp_path / "reader" / "adapter_model.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as weights:
        assert not [key for key in weights.keys() if "lora" in key or "base_layer" in key]
    loaded = SentenceTransformer(str(tmp_path), trust_remote_code=True)
    assert loaded[0].reader is not None
    np.testing.assert_allclose(loaded.encode_query(inputs), before, atol=1e-6)
    np.testing.assert_array_equal(
        loaded.encode_document(texts["documents"]), tiny_model.encode_document(texts["documents"])
    )


def test_inputs_are_checked(tiny_model, texts):
    with pytest.raises(TypeError, match="mixes"):
        tiny_model[0].preprocess([("a cat", ["a lion"]), "a dog"], task="query")
    with pytest.raises(TypeError, match="passages"):
        tiny_model[0].preprocess([("a cat", [1, 2])], task="query")
    with pytest.raises(TypeError):
        tiny_model[0].preprocess([("a cat", ["a lion"])], task="document")  # documents never read


def test_search_matches_both_passes_by_hand(tiny_model, texts):
    module = tiny_model[0]
    module.reasoning, module.read_top_k = False, 2
    with_reader(tiny_model)
    queries, corpus = texts["queries"], texts["documents"]
    documents = tiny_model.encode_document(corpus, convert_to_tensor=True)
    direct = tiny_model.encode_query(queries, convert_to_tensor=True)
    assert module.search(queries, corpus, top_k=3, reading=False) == semantic_search(direct, documents, top_k=3)

    first = semantic_search(direct, documents, top_k=2)
    read = tiny_model.encode_query([(q, [corpus[h["corpus_id"]] for h in hits]) for q, hits in zip(queries, first)])
    expected = semantic_search(torch.as_tensor(read), documents, top_k=3)
    hits = module.search(queries, corpus, top_k=3)
    assert [[h["corpus_id"] for h in row] for row in hits] == [[h["corpus_id"] for h in row] for row in expected]
    # Given vectors (numpy, unnormalised) give the same hits; one by one equals batched.
    given = module.search(queries, corpus, top_k=3, corpus_embeddings=3 * documents.numpy())
    assert [[h["corpus_id"] for h in row] for row in given] == [[h["corpus_id"] for h in row] for row in hits]
    single = [module.search([query], corpus, top_k=3)[0] for query in queries]
    for one, batched in zip(single, hits):
        assert [h["corpus_id"] for h in one] == [h["corpus_id"] for h in batched]
        np.testing.assert_allclose([h["score"] for h in one], [h["score"] for h in batched], atol=2e-5)


def test_search_edge_cases(tiny_model, texts):
    module = tiny_model[0]
    module.read_top_k = 5
    corpus = texts["documents"][:2]
    assert module.search(["a wild cat"], corpus) == module.search(["a wild cat"], corpus, reading=False)  # no reader
    hits = module.search(["a wild cat", ""], corpus, top_k=10, reading=True)  # fewer documents than top_k and k
    assert [len(row) for row in hits] == [2, 2]
    twice = module.search(["a wild cat"], [corpus[0], corpus[0]], top_k=2, reading=True)[
        0
    ]  # duplicates: both, equal scores
    assert sorted(h["corpus_id"] for h in twice) == [0, 1] and twice[0]["score"] == pytest.approx(twice[1]["score"])
    with pytest.raises(ValueError, match="corpus is empty"):
        module.search(["a cat"], [])
    with pytest.raises(TypeError, match="queries"):
        module.search("a cat", corpus)
    with pytest.raises(ValueError, match="shape"):
        module.search(["a cat"], corpus, corpus_embeddings=np.zeros((3, module.get_embedding_dimension())))


@pytest.mark.slow
def test_read_script_trains_a_reader_that_loads_and_resumes(tiny_llm, tiny_data, tmp_path):
    model_folder = tmp_path / "model"
    SentenceTransformer(modules=[SearchR3(tiny_llm, max_seq_length=192, reasoning=False)]).save(str(model_folder))
    arguments = [
        "--model",
        model_folder,
        "--data_dir",
        tiny_data,
        "--sources",
        "wordnet",
        "--output_dir",
        tmp_path / "run",
    ]
    arguments += [
        "--queries_per_source",
        12,
        "--documents_per_source",
        40,
        "--batch_size",
        4,
        "--read_passage_tokens",
        8,
    ]
    arguments += ["--lora_r", 4, "--learning_rate", 1e-3, "--bf16", "false", "--lexical_weight", 0.1]
    result = run_train_script("read.py", "read.yaml", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    final = tmp_path / "run" / "final"
    record = json.loads((final / "reader_record.json").read_text())
    assert record["steps"] == 3 and record["queries"] == 12 and all(np.isfinite(record["loss_history"]))
    first_pass = torch.load(tmp_path / "run" / "first_pass.pt")
    assert first_pass["lexical"].shape == (12, record["documents"]) and first_pass["lexical"].max() <= 0.1 + 1e-6
    settings = json.loads((final / "search_r3_config.json").read_text())
    assert settings["read_passage_tokens"] == 8

    model = SentenceTransformer(str(final), trust_remote_code=True)
    assert model[0].reader is not None
    base = SentenceTransformer(str(model_folder), trust_remote_code=True)
    assert np.array_equal(model.encode_document(["a lion"]), base.encode_document(["a lion"]))
    read = model.encode_query([("a wild cat", ["a lion", "a tiger"])])
    assert not np.allclose(read, base.encode_query([("a wild cat", ["a lion", "a tiger"])]), atol=1e-4)

    again = run_train_script("read.py", "read.yaml", *arguments, "--epochs", 2, "--resume", "true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed at step 3" in again.stderr
    assert json.loads((final / "reader_record.json").read_text())["steps"] == 6


def test_reader_config_refuses_held_out_sources_and_empty_reads():
    from st_search_r3.training.config import SearchR3ReaderConfig

    with pytest.raises(ValueError, match="held out"):
        SearchR3ReaderConfig(sources=["faqs", "vimfaq"])
    with pytest.raises(ValueError, match="read_top_k"):
        SearchR3ReaderConfig(read_top_k=0)


def test_rocchio_adds_the_mean_of_the_first_searchs_top_documents():
    from st_search_r3.reading import rocchio

    documents = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    queries = torch.tensor([[2.0, 0.1]])
    torch.testing.assert_close(rocchio(queries, documents, k=2, beta=0.0), torch.nn.functional.normalize(queries))
    top_two = (torch.tensor([[1.0, 0.0]]) + torch.tensor([[1.0, 1.0]]) / 2**0.5) / 2  # documents 0 and 2
    expected = torch.nn.functional.normalize(torch.nn.functional.normalize(queries) + 0.5 * top_two)
    torch.testing.assert_close(rocchio(queries, documents, k=2, beta=0.5), expected)
    assert rocchio(queries, documents, k=10, beta=1.0).shape == (1, 2)  # k beyond the corpus: all of it
