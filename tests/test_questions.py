from __future__ import annotations

import json

import numpy as np
from datasets import load_from_disk

from st_search_r3.data import faqs
from st_search_r3.data.questions import build, few_shot_prefix, first_question, round_trip
from tests.test_faqs import ROOT as FAQ_FIXTURES


def faq_splits(tmp_path):
    (tmp_path / "root").symlink_to(FAQ_FIXTURES.resolve())
    return faqs.build("faqs", tmp_path, seed=0, dev_fraction=0.0, test_fraction=0.0)


def test_the_prompt_shows_real_question_answer_pairs(tmp_path):
    train = faq_splits(tmp_path)["train"]
    prefix = few_shot_prefix(train, shots=2)
    assert prefix.count("Text: ") == 2 and prefix.count("\nQuestion: ") == 2 and prefix.endswith("\n\n")
    assert any(f"Question: {question}\n" in prefix for question in train.queries.values())


def test_only_real_questions_are_kept():
    assert first_question(" How do I count the lines of a file?\nText: more") == "How do I count the lines of a file?"
    assert first_question("The answer is:") is None
    assert first_question("Why not?") is None  # too short to be asked without its FAQ's title


def test_round_trip_keeps_questions_whose_document_ranks_first():
    documents = np.eye(3)
    questions = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]])  # both closest to document 0
    kept, negatives = round_trip(
        questions / np.linalg.norm(questions, axis=1, keepdims=True), documents, np.array([0, 1])
    )
    assert kept.tolist() == [True, False]
    assert negatives.tolist() == [1, 0]


def test_build_writes_triplets_a_training_run_can_pin(tiny_model, tiny_data, tmp_path, monkeypatch):
    from st_search_r3.data import questions

    (tiny_data / "faqs").mkdir()
    faq_splits(tmp_path)["train"].save(tiny_data / "faqs" / "train")
    tiny_model.save(str(tmp_path / "embedder"))

    # A writer that asks after the document's own first words (the tiny random LLM writes no questions); the
    # round-trip filter and everything after it are the real ones.
    def ask(tokenizer, llm, documents, prefix):
        return [f"What is {d.split('.')[0]}?" if i % 3 else None for i, d in enumerate(documents)]

    monkeypatch.setattr(questions, "write_questions", ask)
    manifest = build(
        tiny_data, ["wordnet"], per_source=12, embedder=str(tmp_path / "embedder"), writer=str(tmp_path / "embedder")
    )
    counts = manifest["counts"]["wordnet"]
    assert counts["documents"] == 12 and counts["questions"] == 8 and 0 < counts["kept"] <= 8
    triplets = load_from_disk(str(tiny_data / "questions" / "train_triplets"))
    assert len(triplets) == counts["kept"] == manifest["train_triplets"]
    assert triplets.column_names == ["anchor", "positive", "negative", "query_id", "negative_id"]
    for anchor, positive, negative in zip(triplets["anchor"], triplets["positive"], triplets["negative"]):
        assert anchor == f"What is {positive.split('.')[0]}?" and negative != positive
    saved = json.loads((tiny_data / "questions" / "manifest.json").read_text())
    assert saved["files"] and all(name.startswith("train_triplets/") for name in saved["files"])


def test_build_says_so_when_no_question_survives(tiny_llm, tiny_model, tiny_data, tmp_path):
    import pytest

    (tiny_data / "faqs").mkdir()
    faq_splits(tmp_path)["train"].save(tiny_data / "faqs" / "train")
    tiny_model.save(str(tmp_path / "embedder"))
    with pytest.raises(ValueError, match="No question passed"):  # random weights write no question
        build(tiny_data, ["wordnet"], per_source=4, embedder=str(tmp_path / "embedder"), writer=tiny_llm, shots=2)
