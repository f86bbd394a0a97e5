"""``search-r3`` in MTEB's model registry: ``mteb run -m search-r3`` and ``mteb.get_model("search-r3")``."""

from __future__ import annotations

from typing import Any

from mteb.models.model_implementations import MODEL_REGISTRY
from mteb.models.model_meta import ModelMeta, ScoringFunction

from st_search_r3 import __version__
from st_search_r3.install import HUB_ID, MODEL_NAME

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

    model = SentenceTransformer(str(install()), trust_remote_code=True, device=device, **kwargs)
    return SentenceTransformerEncoderWrapper(model)


SEARCH_R3_META = ModelMeta(
    loader=load_search_r3,
    name=HUB_ID.replace("sentence-transformers/", "st-search-r3/"),
    revision=__version__,
    release_date="2026-11-22",
    languages=["eng-Latn"],
    # SmolLM2-135M-Instruct (134,515,008, tied input/output embeddings) plus the <|embed_token|> row.
    n_parameters=134_515_584,
    n_embedding_parameters=49_153 * 576,
    memory_usage_mb=514,
    max_tokens=512,
    embed_dim=576,
    license="apache-2.0",
    open_weights=True,
    public_training_code=None,
    public_training_data=None,
    framework=["Sentence Transformers", "PyTorch", "safetensors"],
    reference="https://arxiv.org/abs/2510.07048",
    similarity_fn_name=ScoringFunction.COSINE,
    # Queries get a reasoning system prompt and are answered before embedding; documents are not.
    use_instructions=True,
    training_datasets=set(),
    adapted_from="HuggingFaceTB/SmolLM2-135M-Instruct",
    model_type=["dense"],
    citation=SEARCH_R3_CITATION,
)


# Importing this module registers the model, as mteb's own model modules do; `_mteb_hook` imports it
# right after `mteb`, so `mteb.get_model("search-r3")` works without importing anything by hand.
MODEL_REGISTRY[MODEL_NAME] = SEARCH_R3_META
MODEL_REGISTRY[SEARCH_R3_META.name] = SEARCH_R3_META
