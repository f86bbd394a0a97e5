from __future__ import annotations

import json
from pathlib import Path

import pytest

from st_search_r3.data import wordnet
from st_search_r3.data.beir import BeirFormatError, load_beir, save_beir

FIXTURES = Path(__file__).parent / "fixtures"


def test_save_and_load_round_trip_per_split(tmp_path):
    splits = wordnet.build(FIXTURES / "wordnet", seed=0, dev_fraction=0.2, test_fraction=0.2)
    save_beir(tmp_path, {"train": splits["train"], "dev": splits["dev"]})
    assert sorted(p.name for p in (tmp_path / "qrels").iterdir()) == ["dev.tsv", "train.tsv"]
    dev = load_beir(tmp_path, "dev")
    assert dev.queries == splits["dev"].queries and dev.qrels == splits["dev"].qrels
    assert dev.corpus == {**splits["train"].corpus, **splits["dev"].corpus}, "the folder's whole corpus"


def write(folder: Path, corpus: list[dict], queries: list[dict], qrels: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries))
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


def test_titles_join_the_text_and_zero_scores_are_not_relevant(tmp_path):
    folder = write(
        tmp_path,
        [{"_id": "d1", "title": "Lion", "text": "A big cat."}, {"_id": "d2", "text": "A sponge."}],
        [{"_id": "q1", "text": "big cat"}, {"_id": "q2", "text": "sea animal"}],
        "q1\td1\t1\nq2\td2\t0\n",
    )
    split = load_beir(folder, "dev")
    assert split.corpus == {"d1": "Lion\nA big cat.", "d2": "A sponge."}
    assert split.qrels == {"q1": {"d1": 1}} and list(split.queries) == ["q1"]


@pytest.mark.parametrize(
    "corpus, queries, qrels, message",
    [
        ([{"_id": "d1", "text": "x"}], [{"_id": "q1", "text": "y"}], "q1\td9\t1\n", r"dev.tsv, line 2: corpus-id 'd9'"),
        ([{"_id": "d1", "text": "x"}], [{"_id": "q1", "text": "y"}], "q7\td1\t1\n", r"dev.tsv, line 2: query-id 'q7'"),
        ([{"_id": "d1", "text": ""}], [{"_id": "q1", "text": "y"}], "q1\td1\t1\n", r"corpus.jsonl, line 1: .*empty"),
        ([{"_id": "d1", "text": 5}], [{"_id": "q1", "text": "y"}], "q1\td1\t1\n", r"corpus.jsonl, line 1: .*int"),
        ([{"text": "x"}], [{"_id": "q1", "text": "y"}], "q1\td1\t1\n", r"corpus.jsonl, line 1: field '_id'"),
        ([{"_id": "d1", "text": "x"}], [{"_id": "q1", "text": "y"}], "q1\td1\n", r"dev.tsv, line 2: expected"),
    ],
)
def test_bad_folders_name_the_file_line_and_field(tmp_path, corpus, queries, qrels, message):
    with pytest.raises(BeirFormatError, match=message):
        load_beir(write(tmp_path / "beir", corpus, queries, qrels), "dev")


def test_a_missing_file_says_what_a_beir_folder_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match="qrels/test.tsv"):
        load_beir(tmp_path, "test")
