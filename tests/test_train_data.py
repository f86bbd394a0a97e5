from __future__ import annotations

import json

import pytest
from datasets import Dataset

from st_search_r3.training.train_data import TrainDataError, data_files_sha256, load_pairs, row_ids

ROWS = {"anchor": ["big cat", "sea animal"], "positive": ["lion", "sponge"], "negative": ["sponge", "lion"]}


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet", "saved"])
def test_every_format_gives_the_same_columns(tmp_path, kind):
    dataset = Dataset.from_dict(ROWS)
    path = tmp_path / f"triplets.{kind}"
    {"jsonl": dataset.to_json, "csv": dataset.to_csv, "parquet": dataset.to_parquet, "saved": dataset.save_to_disk}[
        kind
    ](str(path))
    loaded = load_pairs(str(path))
    assert loaded.column_names == ["anchor", "positive", "negative"] and loaded[:] == ROWS


def test_without_the_names_the_first_text_columns_are_anchor_positive_negative(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"question": q, "answer": a, "score": 1}) + "\n"
            for q, a in zip(ROWS["anchor"], ROWS["positive"])
        )
    )
    loaded = load_pairs(str(path))
    assert loaded.column_names == ["anchor", "positive"] and loaded["anchor"] == ROWS["anchor"]


@pytest.mark.parametrize(
    "rows, message",
    [
        ({"anchor": ["a", "b"], "score": [1, 2]}, "needs columns 'anchor' and 'positive'"),
        ({"anchor": ["a", "b"], "positive": ["x", " "]}, r"row 1, column 'positive': empty text"),
        ({"anchor": ["a", None], "positive": ["x", "y"]}, r"row 1, column 'anchor': NoneType"),
    ],
)
def test_bad_rows_name_the_file_row_and_column(tmp_path, rows, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(dict(zip(rows, values))) + "\n" for values in zip(*rows.values())))
    with pytest.raises(TrainDataError, match=f"{path}.*{message}"):
        load_pairs(str(path))


def test_unknown_file_kinds_are_refused(tmp_path):
    path = tmp_path / "triplets.txt"
    path.write_text("a\tb\n")
    with pytest.raises(TrainDataError, match="jsonl"):
        load_pairs(str(path))


def test_row_ids_and_file_hashes_follow_the_content(tmp_path):
    dataset = Dataset.from_dict(ROWS)
    assert row_ids(dataset) == row_ids(Dataset.from_dict(ROWS)) and len(set(row_ids(dataset))) == 2
    path = tmp_path / "t.jsonl"
    dataset.to_json(str(path))
    before = data_files_sha256(str(path))
    path.write_text(path.read_text().replace("lion", "tiger"))
    assert data_files_sha256(str(path)) != before
