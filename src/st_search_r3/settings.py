"""The settings of a :class:`~st_search_r3.module.SearchR3` module: the default prompts and the checks every
setting passes, in one place (construction, loading and later assignment all call :func:`check_settings`)."""

from __future__ import annotations

# Light on purpose (no torch): the MTEB registration, run at every `import mteb`, reads these.
EMBED_TOKEN = "<|embed_token|>"

REASONING_PROMPT = (
    "You are a search expert. Before answering, enrich the user's input for retrieval: "
    "1. core concepts and how they relate; 2. key terms with short definitions; "
    "3. synonyms and related terms; 4. related topics. Be brief. "
    f"You MUST end every response with {EMBED_TOKEN}"
)
EMBEDDING_PROMPT = "Analyze the input text and create a high-quality semantic vector embedding."
ANSWER_PREFIX = "The embedding is "
PRECISIONS = ("float32", "bfloat16")
# The prompt names clients send for each side: sentence-transformers' encode_query / encode_document, LangChain's
# query_encode_kwargs={"prompt_name": "query"}, LlamaIndex's "query" and "text". Each names a marker that routes
# the texts to their side and is never embedded as text.
PROMPT_NAMES = {
    "query": "query",
    "document": "document",
    "passage": "document",
    "text": "document",
    "corpus": "document",
}
SIDE_MARKERS = {"query": "<|query|>", "document": "<|document|>"}
MARKER_SIDES = {marker: side for side, marker in SIDE_MARKERS.items()}


def side_prompts() -> dict[str, str]:
    """The ``prompts`` of a ``SentenceTransformer`` around the module: each prompt name and its side's marker."""
    return {name: SIDE_MARKERS[side] for name, side in PROMPT_NAMES.items()}


def check_settings(
    *,
    reasoning: bool | str,
    max_reasoning_tokens: int,
    repetition_penalty: float,
    no_repeat_ngram_size: int,
    max_seq_length: int,
    reasoning_memory_size: int,
    read_top_k: int = 3,
    read_passage_tokens: int = 64,
    precision: str,
    matmul_precision: str,
    **_,
) -> None:
    """Raises ``ValueError`` (``TypeError`` for a wrong type) naming the first setting that is out of range."""
    if not isinstance(reasoning, bool) and reasoning != "auto":
        raise TypeError(f"reasoning must be True, False or 'auto', got {reasoning!r}")
    for name, value, least in (
        ("max_reasoning_tokens", max_reasoning_tokens, 1),
        ("no_repeat_ngram_size", no_repeat_ngram_size, 0),
        ("max_seq_length", max_seq_length, 1),
        ("reasoning_memory_size", reasoning_memory_size, 0),
        ("read_top_k", read_top_k, 1),
        ("read_passage_tokens", read_passage_tokens, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    if not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
    for name, value in (("precision", precision), ("matmul_precision", matmul_precision)):
        if value not in PRECISIONS:
            raise ValueError(f"{name} must be one of {PRECISIONS}, got {value!r}")
