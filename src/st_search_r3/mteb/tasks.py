"""Retrieval tasks that MTEB loads from local files instead of the hub.

``SearchR3WordNetDemo`` ships inside the package. The three data tasks read what
``python -m st_search_r3.data.build`` wrote (``$ST_SEARCH_R3_DATA``); their ``test`` split is the default,
``task.filter_eval_splits(["dev"])`` (or ``mteb run --eval-splits dev``) selects the dev split.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from datasets import Dataset
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata

from st_search_r3.data.build import data_dir
from st_search_r3.data.demo import DEMO_DIR
from st_search_r3.data.retrieval_split import RetrievalSplit


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


class WordNetRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3WordNetRetrieval",
        description="Reverse dictionary on WordNet 3.0: the query is a definition, the document the synset's "
        "words, hypernyms and usage examples. Split by synset.",
        reference="https://wordnet.princeton.edu/",
        license="https://wordnet.princeton.edu/license-and-commercial-use",
        domains=["Written"],
    )

    source = "wordnet"


class DebianRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3DebianRetrieval",
        description="Debian 12 package search: the query is a package's one-line summary, the document its "
        "long description. Split by package, one package per shared first paragraph.",
        reference="https://www.debian.org/distrib/packages",
        license="not specified",
        domains=["Programming", "Written"],
    )

    source = "debian"


class PythonCodeRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3PythonCodeRetrieval",
        description="Code search in the Python standard library: the query is a function's first docstring "
        "line, the document its code without the docstring. Split by module.",
        reference="https://docs.python.org/3/library/",
        license="https://docs.python.org/3/license.html",
        domains=["Programming"],
    )

    source = "pycode"


class ManPagesRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3ManPagesRetrieval",
        description="Linux man pages (man-pages 6.03, Debian 12): the query is a page's NAME summary without the "
        "function names, the document its DESCRIPTION section. Split by page, one page per summary.",
        reference="https://www.kernel.org/doc/man-pages/",
        license="not specified",
        domains=["Programming"],
    )

    source = "manpages"


class InfoManualsRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3InfoManualsRetrieval",
        description="GNU info manuals shipped by Debian 12 main packages (coreutils, findutils, grep, sed, gzip, "
        "gnupg, ...): the query is a section's title without its number, the document the section's text. "
        "Split by section; titles used by more than one section are dropped.",
        reference="https://www.gnu.org/manual/",
        license="not specified",
        domains=["Programming"],
    )

    source = "infomanuals"


class FAQRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3FAQRetrieval",
        description="Questions as people ask them: the Perl FAQ (perlfaq1-9) and the Z Shell FAQ, as Debian 12 main "
        "ships them. The query is a question, the document its answer. Split by question.",
        reference="https://perldoc.perl.org/perlfaq",
        license="not specified",
        domains=["Programming", "Written"],
    )

    source = "faqs"


class VimFAQRetrieval(LocalRetrievalTask):
    metadata = task_metadata(
        name="SearchR3VimFAQRetrieval",
        description="Questions as people ask them, held out of training: the Vim FAQ as Debian 12 main ships it "
        "(vim-doc). The query is a question, the document its answer. A test split only.",
        reference="https://vimhelp.org/vim_faq.txt.html",
        license="not specified",
        domains=["Programming", "Written"],
    )

    source = "vimfaq"


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
