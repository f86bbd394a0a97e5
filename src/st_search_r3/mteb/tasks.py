"""Retrieval tasks that MTEB loads from local files instead of the hub.

``SearchR3WordNetDemo`` ships inside the package. The data tasks, one per built source, read what
``python -m st_search_r3.data.build`` wrote (``$ST_SEARCH_R3_DATA``); their ``test`` split is the default,
``task.filter_eval_splits(["dev"])`` (or ``mteb run --eval-splits dev``) selects the dev split.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from datasets import Dataset
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata

from st_search_r3.data.demo import DEMO_DIR
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.data.sources import SOURCES, data_dir


def task_metadata(name: str, description: str, reference: str, license: str, domains: list[str]) -> TaskMetadata:
    """Metadata of a local English text-to-text retrieval task scored by nDCG@10 on its ``test`` split."""
    return TaskMetadata(
        name=name,
        description=description,
        reference=reference,
        dataset={"path": f"local/{name}", "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        date=("2006-01-01", "2026-11-01"),
        domains=domains,
        task_subtypes=[],
        license=license,
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )


class LocalRetrievalTask(AbsTaskRetrieval):
    """An MTEB retrieval task whose splits are :class:`RetrievalSplit` folders under ``root()``: by default
    the folder of the data builder's ``source`` (``python -m st_search_r3.data.build``)."""

    source: str

    @classmethod
    def root(cls) -> Path:
        return data_dir() / cls.source

    def load_data(self, num_proc: int | None = None, **kwargs) -> None:
        if self.data_loaded:
            return
        self.dataset = {"default": {split: self._load_split(self.root() / split) for split in self.eval_splits}}
        self.data_loaded = True

    @staticmethod
    def _load_split(folder: Path) -> dict:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist: build the data with `python -m st_search_r3.data.build`")
        split = RetrievalSplit.load(folder)
        return {
            "corpus": Dataset.from_list([{"id": i, "text": t, "title": ""} for i, t in split.corpus.items()]),
            "queries": Dataset.from_list([{"id": i, "text": t} for i, t in split.queries.items()]),
            "relevant_docs": split.qrels,
            "top_ranked": None,
        }


class WordNetDemoRetrieval(LocalRetrievalTask):
    """40 WordNet definitions against 600 synsets, shipped with the package: runs anywhere, offline."""

    metadata = task_metadata(
        name="SearchR3WordNetDemo",
        description="Reverse dictionary: find the WordNet 3.0 synset (words, hypernyms, usage examples) "
        "from its definition. 40 queries, 600 documents, from the test split of the WordNet builder.",
        reference="https://wordnet.princeton.edu/",
        license="https://wordnet.princeton.edu/license-and-commercial-use",
        domains=["Written"],
    )

    @classmethod
    def root(cls) -> Path:
        return DEMO_DIR


def data_task(source: str) -> type[LocalRetrievalTask]:
    """The task of a built source, its card from :data:`~st_search_r3.data.sources.SOURCES`."""
    spec = SOURCES[source]
    metadata = task_metadata(
        name=spec["task"],
        description=spec["description"],
        reference=spec["reference"],
        license=spec.get("task_license", "not specified"),
        domains=spec["domains"],
    )
    name = spec["task"].removeprefix("SearchR3")
    return type(name, (LocalRetrievalTask,), {"metadata": metadata, "source": source, "__module__": __name__})


WordNetRetrieval = data_task("wordnet")
DebianRetrieval = data_task("debian")
PythonCodeRetrieval = data_task("pycode")
ManPagesRetrieval = data_task("manpages")
InfoManualsRetrieval = data_task("infomanuals")
FAQRetrieval = data_task("faqs")
VimFAQRetrieval = data_task("vimfaq")

TASKS: list[type[LocalRetrievalTask]] = [
    WordNetDemoRetrieval,
    WordNetRetrieval,
    DebianRetrieval,
    PythonCodeRetrieval,
    ManPagesRetrieval,
    InfoManualsRetrieval,
    FAQRetrieval,
    VimFAQRetrieval,
]
DATA_TASKS = TASKS[1:]

# Importing this module registers the tasks (`mteb run -t SearchR3WordNetDemo`); `st_search_r3.mteb.hook` imports it
# right after `mteb`. The registry is a private dict of the module shadowed by `mteb.get_tasks()`.
for _task in TASKS:
    importlib.import_module("mteb.get_tasks")._TASKS_REGISTRY[_task.metadata.name] = _task
