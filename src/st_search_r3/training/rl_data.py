"""Stage 2, RL: the training queries and the cached corpus they are ranked in."""

from __future__ import annotations

from datasets import Dataset
from sentence_transformers import SentenceTransformer

from st_search_r3.data.beir import load_beir
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.training.config import SearchR3RLConfig
from st_search_r3.training.corpus_index import CorpusIndex


def load_rl_data(config: SearchR3RLConfig, model: SentenceTransformer, seed: int = 0) -> tuple[Dataset, dict]:
    """GRPO rows (``prompt`` messages, ``relevant_ids``) and the corpus ``{int id: text}`` they are ranked in: the
    train split of ``config.train_data`` (a BEIR folder) if set, else of the built ``config.source``."""
    if config.train_data:
        split = load_beir(config.train_data, "train")
    else:
        folder = config.root() / config.source / "train"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: build the data first: python -m st_search_r3.data.build")
        split = RetrievalSplit.load(folder)
    split = split.sample(config.train_queries, config.corpus_size, seed=seed)
    number = {doc_id: i for i, doc_id in enumerate(split.corpus)}
    system = model[0].reasoning_prompt
    rows = {
        "prompt": [
            [{"role": "system", "content": system}, {"role": "user", "content": split.queries[q]}]
            for q in split.queries
        ],
        "relevant_ids": [sorted(number[d] for d in split.qrels[q]) for q in split.queries],
    }
    corpus = {number[d]: text for d, text in split.corpus.items()}
    return Dataset.from_dict(rows), corpus


def build_corpus_index(config: SearchR3RLConfig, model: SentenceTransformer, corpus: dict[int, str]) -> CorpusIndex:
    """The cached corpus, encoded by ``model`` without reasoning (the documents path)."""

    def encode(texts: list[str]):
        return model.encode_document(texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=True)

    return CorpusIndex(list(corpus), list(corpus.values()), encode, refresh_size=config.refresh_size)
