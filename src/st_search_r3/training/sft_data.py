"""Stage 1, supervised: the model to train and its training set."""

from __future__ import annotations

import logging

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets
from sentence_transformers import SentenceTransformer

from st_search_r3.module import SearchR3
from st_search_r3.settings import side_prompts
from st_search_r3.training.config import SearchR3SFTConfig, native_cpu_bf16
from st_search_r3.training.distillation import add_teacher_embeddings, load_teacher
from st_search_r3.training.reasoning_cache import cache_path, cache_reasoning
from st_search_r3.training.recipe import draw_rows, ids_sha256, rows_sha256
from st_search_r3.training.train_data import COLUMNS, TrainDataError, load_pairs, row_ids

logger = logging.getLogger(__name__)


def build_model(config: SearchR3SFTConfig) -> SentenceTransformer:
    """SearchR3 on the base LLM, with LoRA on every linear layer and the embed-token row trainable
    (a new adapter, or ``config.init_adapter`` trained further)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    module = SearchR3(
        config.base_model,
        # A model trained without reasoning targets embeds queries without reasoning by default.
        reasoning=config.reasoning_queries > 0,
        max_reasoning_tokens=config.max_reasoning_tokens,
        max_seq_length=config.max_seq_length,
        no_repeat_ngram_size=config.no_repeat_ngram_size,
        fuse_direct_embedding=config.fuse_direct_embedding,
        model_kwargs={"attn_implementation": config.attn_implementation},
    )
    if config.init_adapter:
        module.auto_model = PeftModel.from_pretrained(module.auto_model, config.init_adapter, is_trainable=True)
    else:
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            trainable_token_indices={"embed_tokens": [module.embed_token_id]},
        )
        module.auto_model = get_peft_model(module.auto_model, lora)
    # Recorded in the adapter's config: the name, not a local cache path, finds the base again.
    module.auto_model.peft_config["default"].base_model_name_or_path = config.base_model
    return SentenceTransformer(modules=[module], similarity_fn_name="cosine", prompts=side_prompts())


ROUTES = {
    # Anchors with reasoning are (query, reasoning) pairs: the query prompt, the reasoning, the token.
    "reasoning": {"anchor": "query", "positive": "document", "negative": "document"},
    # The others take the reasoning-off query format, which is the document format.
    "direct": {"anchor": "document", "positive": "document", "negative": "document"},
}


def load_training_set(config: SearchR3SFTConfig, model: SentenceTransformer, seed: int = 0) -> tuple[DatasetDict, dict]:
    """The training triplets, split into ``"reasoning"`` and ``"direct"`` anchors (see :data:`ROUTES`), and the
    draw's record (:func:`load_triplets`).

    The first ``config.reasoning_queries`` anchors get the base model's own greedy reasoning, cached on disk
    (:func:`~st_search_r3.training.reasoning_cache.cache_path`); it takes about a second per query. Each batch
    comes from one of the two sets, in proportion to their sizes. Documents are cut to
    ``config.max_document_tokens`` tokens. With ``config.teacher_model`` every row gets the teacher's vectors of
    its (cut) texts as a ``label`` column (:mod:`~st_search_r3.training.distillation`).
    """
    tokenizer = model[0].tokenizer
    triplets, draw = load_triplets(config, seed)
    if config.max_document_tokens:
        triplets = triplets.map(
            lambda rows: {
                column: cut_to_tokens(rows[column], tokenizer, config.max_document_tokens)
                for column in ("positive", "negative")
                if column in rows
            },
            batched=True,
            desc="cutting documents",
        )
    if config.teacher_model:
        teacher_cache = config.root() / "teacher"
        triplets = add_teacher_embeddings(triplets, load_teacher(config.teacher_model), teacher_cache)
    with_reasoning = triplets.select(range(min(config.reasoning_queries, len(triplets))))
    direct = triplets.select(range(len(with_reasoning), len(triplets)))
    if len(with_reasoning):
        # bf16 weights reason about twice as fast on a CPU with bf16 hardware (three times slower where it is
        # emulated); these texts are data, not vectors to compare.
        precision = "bfloat16" if native_cpu_bf16() else "float32"
        module = SearchR3(config.base_model, max_reasoning_tokens=config.max_reasoning_tokens, precision=precision)
        reasoning = cache_reasoning(module, with_reasoning["anchor"], cache_path(config.root(), module))
        del module
        pairs = [[query, reasoning[query]] for query in with_reasoning["anchor"]]
    parts = {"direct": direct} if len(direct) else {}
    if len(with_reasoning):
        parts["reasoning"] = with_reasoning.remove_columns("anchor").add_column("anchor", pairs)
        parts["reasoning"] = parts["reasoning"].select_columns(direct.column_names)
    return DatasetDict(parts), draw


def cut_to_tokens(texts: list[str], tokenizer, max_tokens: int) -> list[str]:
    """Each text cut to its first ``max_tokens`` tokens (texts already short enough are kept as they are)."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [text if len(row) <= max_tokens else tokenizer.decode(row[:max_tokens]) for text, row in zip(texts, ids)]


def training_sets(config: SearchR3SFTConfig) -> dict[str, str]:
    """Name to location of each training set: ``config.train_data`` as given, else each built source's triplets."""
    if config.train_data:
        return {spec: spec for spec in config.train_data}
    sets = {source: config.root() / source / "train_triplets" for source in config.sources}
    for folder in sets.values():
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: build the data first: python -m st_search_r3.data.build")
    return {name: str(folder) for name, folder in sets.items()}


def load_triplets(config: SearchR3SFTConfig, seed: int = 0) -> tuple[Dataset, dict]:
    """``(anchor, positive[, negative])`` rows mixed from the training sets (each repeated or subsampled by its
    ``config.source_weights``), shuffled and capped (:func:`~st_search_r3.training.recipe.draw_rows`), and the
    draw's record: the sets' sizes and the hashes of the drawn rows and of their ids."""
    triplets = {name: load_pairs(location) for name, location in training_sets(config).items()}
    columns = [column for column in COLUMNS if column in next(iter(triplets.values())).column_names]
    for name, rows in triplets.items():
        if [column for column in COLUMNS if column in rows.column_names] != columns:
            raise TrainDataError(f"{name}: columns {rows.column_names}, but the first training set has {columns}")
    sizes = {name: len(rows) for name, rows in triplets.items()}
    drawn = draw_rows(sizes, config.source_weights, config.max_train_pairs, seed)
    draw = {
        "sizes": sizes,
        "rows_sha256": rows_sha256(drawn),
        "ids_sha256": ids_sha256(drawn, {name: row_ids(rows) for name, rows in triplets.items()}),
    }
    offsets = dict(zip(triplets, np.cumsum([0, *sizes.values()]).tolist()))
    everything = concatenate_datasets([rows.select_columns(columns) for rows in triplets.values()])
    return everything.select([offsets[name] + row for name, row in drawn]), draw
