from __future__ import annotations

from pathlib import Path

import mteb
import pytest

from st_search_r3.data import wordnet
from st_search_r3.data.demo import demo_split
from st_search_r3.mteb.tasks import DATA_TASKS, WordNetDemoRetrieval, WordNetRetrieval

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def built_wordnet(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_SEARCH_R3_DATA", str(tmp_path))
    splits = wordnet.build(FIXTURES / "wordnet", seed=0, dev_fraction=0.3, test_fraction=0.3)
    for name in ("dev", "test"):
        splits[name].save(tmp_path / "wordnet" / name)
    return splits


def test_all_tasks_are_in_mteb_registry():
    for task in [WordNetDemoRetrieval, *DATA_TASKS]:
        assert type(mteb.get_task(task.metadata.name)) is task


def test_data_task_loads_test_split_by_default_and_dev_on_request(built_wordnet):
    task = mteb.get_task("SearchR3WordNetRetrieval")
    task.load_data()
    test = task.dataset["default"]["test"]
    assert len(test["queries"]) == len(built_wordnet["test"].queries)
    assert test["relevant_docs"] == built_wordnet["test"].qrels
    assert set(test["corpus"].column_names) >= {"id", "text"}

    dev_task = WordNetRetrieval().filter_eval_splits(["dev"])
    dev_task.load_data()
    assert list(dev_task.dataset["default"]) == ["dev"]
    assert len(dev_task.dataset["default"]["dev"]["queries"]) == len(built_wordnet["dev"].queries)


def test_unbuilt_data_task_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_SEARCH_R3_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="st_search_r3.data.build"):
        WordNetRetrieval().load_data()


def test_shipped_demo_task_is_complete():
    split = demo_split()
    assert (len(split.queries), len(split.corpus)) == (40, 600)
    assert all(set(docs) <= set(split.corpus) for docs in split.qrels.values())
