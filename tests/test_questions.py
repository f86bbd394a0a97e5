from __future__ import annotations

import json

import numpy as np
from datasets import load_from_disk

from st_search_r3.data import faqs
from st_search_r3.data.questions import build, few_shot_prefix, first_question, round_trip
from tests.test_faqs import ROOT as FAQ_FIXTURES


def faq_splits(tmp_path):
    (tmp_path / "root").symlink_to(FAQ_FIXTURES.resolve())
    return faqs.build("faqs", tmp_path, seed=0, dev_fraction=0.0, test_fraction=0.0, supplement=False)


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
    def ask(tokenizer, llm, documents, prefix, samples):
        return [[f"What is {d.split('.')[0]}?"] if i % 3 else [] for i, d in enumerate(documents)]

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


def test_any_sentence_transformer_can_be_the_filter(tiny_llm, tiny_teacher, tiny_data, tmp_path, monkeypatch):
    from st_search_r3.data import questions

    (tiny_data / "faqs").mkdir()
    faq_splits(tmp_path)["train"].save(tiny_data / "faqs" / "train")
    monkeypatch.setattr(
        questions,
        "write_questions",
        lambda tokenizer, llm, documents, prefix, samples: [[f"What is {d.split('.')[0]}?"] for d in documents],
    )
    # Static token embeddings (no reasoning switch): the question shares its words with its own document.
    manifest = build(tiny_data, ["wordnet"], per_source=12, embedder=tiny_teacher, writer=tiny_llm)
    assert 0 < manifest["counts"]["wordnet"]["kept"] <= 12 and f"kept when {tiny_teacher} ranks" in manifest["source"]


def test_build_says_so_when_no_question_survives(tiny_llm, tiny_model, tiny_data, tmp_path):
    import pytest

    (tiny_data / "faqs").mkdir()
    faq_splits(tmp_path)["train"].save(tiny_data / "faqs" / "train")
    tiny_model.save(str(tmp_path / "embedder"))
    with pytest.raises(ValueError, match="No question passed"):  # random weights write no question
        build(tiny_data, ["wordnet"], per_source=4, embedder=str(tmp_path / "embedder"), writer=tiny_llm, shots=2)


def test_build_resumes_from_written_questions_and_ranks_within_pools(tiny_model, tiny_data, tmp_path, monkeypatch):
    from st_search_r3.data import questions

    (tiny_data / "faqs").mkdir()
    faq_splits(tmp_path)["train"].save(tiny_data / "faqs" / "train")
    tiny_model.save(str(tmp_path / "embedder"))
    asked_for = []

    def ask(tokenizer, llm, documents, prefix, samples):
        asked_for.extend(documents)
        return [[f"What is {d.split('.')[0]}?", f"Where is {d.split('.')[0]} used?"] for d in documents]

    monkeypatch.setattr(questions, "write_questions", ask)
    settings = dict(embedder=str(tmp_path / "embedder"), writer=str(tmp_path / "embedder"), batch_size=4)
    first = build(tiny_data, ["wordnet"], per_source=8, pool=4, **settings)
    assert len(asked_for) == 8 and first["counts"]["wordnet"]["questions"] == 16
    larger = build(tiny_data, ["wordnet"], per_source=12, pool=4, **settings)
    assert len(asked_for) == 12, "only the 4 added documents are written"
    assert larger["counts"]["wordnet"]["documents"] == 12
    triplets = load_from_disk(str(tiny_data / "questions" / "train_triplets"))
    lines = next((tiny_data / "questions_written").iterdir()).read_text().splitlines()
    pool_of = {q: n // 4 for n, line in enumerate(lines) for q in json.loads(line)["questions"]}  # in draw order
    assert len(triplets) == larger["train_triplets"] > 0
    for anchor, positive, negative in zip(triplets["anchor"], triplets["positive"], triplets["negative"]):
        assert pool_of[f"What is {negative.split('.')[0]}?"] == pool_of[anchor], "the negative is from its pool"


def test_written_questions_survive_a_line_cut_short(tmp_path):
    from st_search_r3.data.questions import WrittenQuestions

    written = WrittenQuestions(tmp_path / "wordnet.jsonl")
    written.add(["a", "b"], [["What is a?"], []])
    with (tmp_path / "wordnet.jsonl").open("a") as handle:
        handle.write('{"id": "c", "questi')
    assert WrittenQuestions(tmp_path / "wordnet.jsonl").questions == {"a": ["What is a?"], "b": []}


def test_sampled_questions_come_back_with_their_document(tiny_llm):
    import torch

    from st_search_r3.data.questions import write_questions
    from st_search_r3.loading import load_llm

    tokenizer, _, _ = load_llm(tiny_llm)

    class Writer:  # generate() as transformers lays it out: num_return_sequences rows per prompt, in prompt order
        device = torch.device("cpu")

        def generate(self, input_ids, attention_mask, do_sample, num_return_sequences=1, **settings):
            rows = range(len(input_ids) * num_return_sequences)
            texts = [
                f"Which is doc{r // num_return_sequences} take {r % num_return_sequences}?" if do_sample else
                f"What is doc{r} about?"
                for r in rows
            ]  # fmt: skip
            texts[-1] = "What is doc1 about?\nnot this line" if do_sample else texts[-1]  # a repeat of the greedy one
            written = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).input_ids
            return torch.cat([input_ids.repeat_interleave(num_return_sequences, 0), written], dim=1)

    questions = write_questions(tokenizer, Writer(), ["One document.", "Another, longer document."], "", samples=2)
    assert questions == [
        ["What is doc0 about?", "Which is doc0 take 0?", "Which is doc0 take 1?"],
        ["What is doc1 about?", "Which is doc1 take 0?"],
    ]
