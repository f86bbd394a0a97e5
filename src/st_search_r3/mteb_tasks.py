"""Retrieval tasks that MTEB loads from local files instead of the hub."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata

from st_search_r3.data.retrieval_split import RetrievalSplit

RESOURCES = Path(__file__).parent / "resources"


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
    """An MTEB retrieval task whose ``test`` split is a :class:`RetrievalSplit` folder (``split_dir``)."""

    split_dir: Path

    def load_data(self, num_proc: int | None = None, **kwargs) -> None:
        if self.data_loaded:
            return
        split = RetrievalSplit.load(self.split_dir)
        self.dataset = {
            "default": {
                "test": {
                    "corpus": Dataset.from_list([{"id": i, "text": t, "title": ""} for i, t in split.corpus.items()]),
                    "queries": Dataset.from_list([{"id": i, "text": t} for i, t in split.queries.items()]),
                    "relevant_docs": split.qrels,
                    "top_ranked": None,
                }
            }
        }
        self.data_loaded = True


class WordNetDemoRetrieval(LocalRetrievalTask):
    """40 WordNet definitions against 600 synsets, shipped with the package: runs anywhere, offline."""

    split_dir = RESOURCES / "wordnet_demo"
    metadata = task_metadata(
        name="SearchR3WordNetDemo",
        description="Reverse dictionary: find the WordNet 3.0 synset (words, hypernyms, usage examples) "
        "from its definition. 40 queries, 600 documents, from the test split of the WordNet builder.",
        reference="https://wordnet.princeton.edu/",
        license="https://wordnet.princeton.edu/license-and-commercial-use",
        domains=["Written"],
    )


TASKS: list[type[LocalRetrievalTask]] = [WordNetDemoRetrieval]
