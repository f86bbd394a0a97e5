"""Retrieval data in the BEIR layout, the one every retrieval benchmark ships:

    FOLDER/corpus.jsonl       {"_id": ..., "title": ..., "text": ...} per document
    FOLDER/queries.jsonl      {"_id": ..., "text": ...} per query
    FOLDER/qrels/SPLIT.tsv    query-id <tab> corpus-id <tab> score, with a header line

:func:`load_beir` reads one split into a :class:`RetrievalSplit` (the queries that split judges, the whole corpus) and
names the file, line and field of anything it cannot use; :func:`save_beir` writes splits as one folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from st_search_r3.data.retrieval_split import RetrievalSplit


class BeirFormatError(ValueError):
    """A BEIR folder that cannot be read as retrieval data; the message names the file, line and field."""


def load_beir(folder: str | Path, split: str) -> RetrievalSplit:
    """The queries judged in ``qrels/<split>.tsv``, the whole corpus, and the judgements (score > 0 is relevant).

    A document's title, when there is one, is put before its text on its own line.
    """
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not path.is_file():
            expected = f"corpus.jsonl, queries.jsonl, qrels/{split}.tsv"
            raise FileNotFoundError(f"{path} is missing: a BEIR folder has {expected}")
    corpus = {}
    for line, row in _rows(folder / "corpus.jsonl"):
        text = _text(row, "text", folder / "corpus.jsonl", line)
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise BeirFormatError(f"{folder / 'corpus.jsonl'}, line {line}: field 'title' is not a string")
        corpus[_id(row, folder / "corpus.jsonl", line)] = f"{title}\n{text}" if title.strip() else text
    queries = {
        _id(row, folder / "queries.jsonl", line): _text(row, "text", folder / "queries.jsonl", line)
        for line, row in _rows(folder / "queries.jsonl")
    }
    result = RetrievalSplit()
    with open(qrels_path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for line, fields in enumerate(reader, start=1):
            if line == 1 and fields and not fields[-1].lstrip("-").isdigit():
                continue  # the header
            if len(fields) != 3 or not fields[2].lstrip("-").isdigit():
                raise BeirFormatError(f"{qrels_path}, line {line}: expected query-id, corpus-id, integer score")
            query_id, document_id, score = fields[0], fields[1], int(fields[2])
            if query_id not in queries:
                raise BeirFormatError(f"{qrels_path}, line {line}: query-id {query_id!r} is not in queries.jsonl")
            if document_id not in corpus:
                raise BeirFormatError(f"{qrels_path}, line {line}: corpus-id {document_id!r} is not in corpus.jsonl")
            if score > 0:
                result.qrels.setdefault(query_id, {})[document_id] = score
    if not result.qrels:
        raise BeirFormatError(f"{qrels_path}: no query has a relevant document (score > 0)")
    result.queries = {q: queries[q] for q in result.qrels}
    result.corpus = corpus
    return result


def save_beir(folder: str | Path, splits: dict[str, RetrievalSplit]) -> None:
    """Writes ``splits`` as one BEIR folder: the union of their corpora and queries, and ``qrels/<name>.tsv`` each."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = {doc_id: text for split in splits.values() for doc_id, text in split.corpus.items()}
    queries = {query_id: text for split in splits.values() for query_id, text in split.queries.items()}
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, text in corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for query_id, text in queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
    for name, split in splits.items():
        with open(folder / "qrels" / f"{name}.tsv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["query-id", "corpus-id", "score"])
            for query_id, documents in split.qrels.items():
                for doc_id, score in documents.items():
                    writer.writerow([query_id, doc_id, score])


def _rows(path: Path):
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if text.strip():
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as error:
                    raise BeirFormatError(f"{path}, line {line}: not JSON ({error.msg})") from None
                if not isinstance(row, dict):
                    raise BeirFormatError(f"{path}, line {line}: expected a JSON object")
                yield line, row


def _id(row: dict, path: Path, line: int) -> str:
    if "_id" not in row:
        raise BeirFormatError(f"{path}, line {line}: field '_id' is missing")
    return str(row["_id"])


def _text(row: dict, field: str, path: Path, line: int) -> str:
    value = row.get(field)
    if not isinstance(value, str):
        raise BeirFormatError(f"{path}, line {line}: field {field!r} is {type(value).__name__}, expected a string")
    if not value.strip():
        raise BeirFormatError(f"{path}, line {line}: field {field!r} is empty")
    return value
