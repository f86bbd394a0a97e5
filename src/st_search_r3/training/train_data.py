"""Training pairs from wherever a user keeps them, in sentence-transformers' column convention.

``--train_data`` takes a JSONL / JSON, CSV or Parquet file, a folder written by ``Dataset.save_to_disk`` (what
``python -m st_search_r3.data.build`` writes as ``<source>/train_triplets``), a folder of data files, or a
Hugging Face dataset id. The columns are ``anchor``, ``positive`` and optionally ``negative``, or else the first
two or three string columns in that order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

COLUMNS = ("anchor", "positive", "negative")
ID_COLUMNS = ("query_id", "negative_id")  # written by the data builder: the ids a draw is pinned by
FILE_KINDS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class TrainDataError(ValueError):
    """Training data that cannot be used; the message names the data, the row and the column."""


def load_pairs(spec: str) -> Dataset:
    """The ``anchor``, ``positive`` (and ``negative``) columns of ``spec``, each value a non-empty string, plus the
    builder's id columns when present."""
    path = Path(spec)
    if path.is_file():
        if path.suffix not in FILE_KINDS:
            raise TrainDataError(f"{spec}: expected a {', '.join(FILE_KINDS)} file, a dataset folder or a hub id")
        dataset = load_dataset(FILE_KINDS[path.suffix], data_files=str(path), split="train")
    elif (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        dataset = load_from_disk(str(path))
    elif path.is_dir():
        dataset = load_dataset(str(path), split="train")
    else:
        dataset = load_dataset(spec, split="train")
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise TrainDataError(f"{spec}: a dataset with splits {list(dataset)} and no 'train' split")
        dataset = dataset["train"]
    return checked(dataset, spec)


def checked(dataset: Dataset, name: str) -> Dataset:
    """``dataset`` reduced to its text columns, named as :data:`COLUMNS`, after checking every value."""
    columns = dataset.column_names
    if {"anchor", "positive"} <= set(columns):
        texts = [column for column in COLUMNS if column in columns]
    else:
        strings = [c for c in columns if getattr(dataset.features[c], "dtype", None) in ("string", "large_string")]
        texts = strings[:3]
        if len(texts) < 2:
            raise TrainDataError(
                f"{name}: needs columns 'anchor' and 'positive' (and optionally 'negative'), or at least two text "
                f"columns; it has {columns}"
            )
        dataset = dataset.rename_columns(dict(zip(texts, COLUMNS)))
        texts = list(COLUMNS[: len(texts)])
    for column in texts:
        for row, value in enumerate(dataset[column]):
            if not isinstance(value, str):
                raise TrainDataError(f"{name}, row {row}, column {column!r}: {type(value).__name__}, expected a string")
            if not value.strip():
                raise TrainDataError(f"{name}, row {row}, column {column!r}: empty text")
    if len(dataset) == 0:
        raise TrainDataError(f"{name}: no rows")
    return dataset.select_columns(texts + [c for c in ID_COLUMNS if c in columns])


def row_ids(dataset: Dataset) -> list[str]:
    """An id per row: the builder's query and negative ids, else a digest of the row's texts."""
    if set(ID_COLUMNS) <= set(dataset.column_names):
        return [f"{q} {n}" for q, n in zip(dataset["query_id"], dataset["negative_id"])]
    texts = zip(*(dataset[c] for c in COLUMNS if c in dataset.column_names))
    return [hashlib.sha1("\x00".join(row).encode()).hexdigest() for row in texts]


def data_files_sha256(spec: str) -> str:
    """A hash of the data ``spec`` names: its file, or every file of its folder; a hub id hashes as its name."""
    path = Path(spec)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    digest = hashlib.sha256(spec.encode() if not files else b"")
    for file in files:
        digest.update(file.relative_to(path.parent if path.is_file() else path).as_posix().encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()
