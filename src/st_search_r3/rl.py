"""Stage 2, RL: the pieces ``train/rl.py`` puts together (config, data, corpus, dev evaluation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from st_search_r3.corpus_index import CorpusIndex
from st_search_r3.data.build import data_dir
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.sft import DevRetrievalEvaluator

logger = logging.getLogger(__name__)


@dataclass
class SearchR3RLConfig:
    """What to train with which environment; the trainer's own knobs are TRL's ``GRPOConfig``."""

    model: str = field(default="search-r3", metadata={"help": "the search-r3 model to improve (name or folder)"})
    data_dir: str | None = field(default=None, metadata={"help": "built data (default: $ST_SEARCH_R3_DATA)"})
    source: str = field(default="wordnet", metadata={"help": "training queries and corpus from this source"})
    train_queries: int = field(default=512, metadata={"help": "training queries drawn from its train split"})
    corpus_size: int = field(default=2000, metadata={"help": "their relevant documents plus distractors"})
    refresh_size: int = field(default=32, metadata={"help": "documents of the rolling slice re-encoded per step"})
    rebuild_every: int = field(default=0, metadata={"help": "steps between full corpus re-encodings (0: never)"})
    ranking_k: int = field(default=100, metadata={"help": "depth of the nDCG ranking reward"})
    ranking_weight: float = field(default=1.0, metadata={"help": "weight of the ranking reward"})
    format_weight: float = field(default=0.1, metadata={"help": "weight of the format reward"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (all linear layers)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    eval_task: str = field(default="wordnet", metadata={"help": "dev split evaluated (reasoning on)"})
    eval_queries: int = field(default=50, metadata={"help": "dev queries evaluated"})
    eval_documents: int = field(default=500, metadata={"help": "dev documents (relevant ones included)"})
    eval_every: int = field(default=20, metadata={"help": "steps between dev evaluations (0: start and end only)"})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "save a checkpoint at least this often"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in output_dir"})

    def root(self) -> Path:
        return Path(self.data_dir) if self.data_dir else data_dir()


def load_rl_data(config: SearchR3RLConfig, model: SentenceTransformer, seed: int = 0) -> tuple[Dataset, dict]:
    """GRPO rows (``prompt`` messages, ``relevant_ids``) and the corpus ``{int id: text}`` they are ranked in."""
    split = RetrievalSplit.load(config.root() / config.source / "train")
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

    return CorpusIndex(
        list(corpus),
        list(corpus.values()),
        encode,
        refresh_size=config.refresh_size,
        rebuild_every=config.rebuild_every,
    )


class DevEvaluationCallback(TrainerCallback):
    """nDCG@10 on a dev sample with reasoning on, at the start, every ``every`` steps and at the end."""

    def __init__(self, config: SearchR3RLConfig, model: SentenceTransformer) -> None:
        split = RetrievalSplit.load(config.root() / config.eval_task / "dev")
        split = split.sample(config.eval_queries, config.eval_documents, seed=0)
        self.evaluator = DevRetrievalEvaluator(split, name=f"{config.eval_task}-dev", reasoning=True)
        self.model = model
        self.every = config.eval_every
        self.trainer = None  # set by train/rl.py: results are logged through the trainer

    def evaluate(self, state) -> None:
        was_training = self.model.training
        scores = self.evaluator(self.model)
        self.model.train(was_training)
        ndcg = next(v for k, v in scores.items() if k.endswith("ndcg@10"))
        logger.info("step %d: dev nDCG@10 with reasoning = %.4f", state.global_step, ndcg)
        self.trainer.log({"dev_ndcg@10": ndcg})

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.evaluate(state)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.evaluate(state)

    def on_train_end(self, args, state, control, **kwargs):
        self.evaluate(state)
