"""The settings of both training stages: TRL-style dataclasses, parsed from YAML and the command line
(``TrlParser``) next to the trainer's own arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.data.build import data_dir


@dataclass
class SearchR3TrainingConfig:
    """What both stages share: where the data is, the LoRA shape, dev evaluation and checkpoints."""

    data_dir: str | None = field(default=None, metadata={"help": "built data (default: $ST_SEARCH_R3_DATA)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (all linear layers)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    eval_task: str = field(default="wordnet", metadata={"help": "dev split evaluated during training"})
    eval_queries: int = field(default=200, metadata={"help": "dev queries evaluated"})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "save a checkpoint at least this often"})
    resume: bool = field(
        default=False,
        metadata={"help": "continue from the last complete checkpoint in output_dir (or --resume_from_checkpoint)"},
    )

    def root(self) -> Path:
        return Path(self.data_dir) if self.data_dir else data_dir()


@dataclass
class SearchR3SFTConfig(SearchR3TrainingConfig):
    """Stage 1: what to train and with which loss; the trainer's knobs are ``SentenceTransformerTrainingArguments``."""

    base_model: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "causal LM: the packaged default, a path or a hub id"}
    )
    init_adapter: str | None = field(
        default=None,
        metadata={"help": "continue training this LoRA adapter folder (e.g. a run's final) instead of a new one"},
    )
    sources: list[str] = field(
        default_factory=lambda: ["wordnet", "debian", "pycode"], metadata={"help": "training sets to mix"}
    )
    source_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "per source, in the order of sources: how many times its triplets enter the mix before the "
            "shuffle (None: once each, so sources mix by size; 0.1 takes a random tenth, 2 every triplet twice)"
        },
    )
    max_train_pairs: int = field(default=12_000, metadata={"help": "triplets drawn from the mixed training sets"})
    skip_train_pairs: int = field(
        default=0,
        metadata={
            "help": "leave out the first this many mixed triplets (with the same seed: those a previous step saw)"
        },
    )
    max_seq_length: int = field(default=256, metadata={"help": "longest prompt in tokens while training"})
    max_reasoning_tokens: int = field(default=128, metadata={"help": "reasoning budget of the trained model"})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "LoRA dropout (its random masks took a third of a CPU step at 0.05)"}
    )
    attn_implementation: str = field(
        default="eager", metadata={"help": "attention while training (on CPU, sdpa's backward is slower than eager)"}
    )
    max_document_tokens: int | None = field(
        default=64,
        metadata={
            "help": "training documents keep their first this many tokens (a CPU step costs what its longest "
            "document costs); evaluation and inference use max_seq_length. None: no cut"
        },
    )
    reasoning_queries: int = field(
        default=0,
        metadata={
            "help": "how many training anchors (the first ones) are trained as (query, reasoning) pairs; the other "
            "anchors embed without reasoning"
        },
    )
    reasoning_targets: str = field(
        default="base",
        metadata={
            "help": "the reasoning of those anchors: 'keywords' (key terms and related words condensed from the "
            "relevant document, st_search_r3.data.reasoning_targets), 'best_of_n' (the best of the model's own "
            "greedy and sampled reasonings, kept where it beats no reasoning; the other anchors train without), "
            "'base' (the base model's own greedy reasoning) or 'model' (the model's own, all kept); generated "
            "reasoning is cached once"
        },
    )
    reasoning_samples: int = field(default=4, metadata={"help": "best_of_n: sampled reasonings per query"})
    sampling_temperature: float = field(default=0.8, metadata={"help": "best_of_n: sampling temperature"})
    reasoning_sampler: str = field(
        default="base",
        metadata={
            "help": "best_of_n: who writes the candidates: 'base' (the LLM with its adapters off: fluent text) or "
            "'model' (the model being trained)"
        },
    )
    reasoning_sentences: int = field(
        default=2,
        metadata={
            "help": "best_of_n, model: each reasoning is cut to its first sentences, so what is imitated stays short"
        },
    )
    fuse_direct_embedding: bool = field(
        default=False,
        metadata={
            "help": "query vectors with reasoning are fused with the query's direct embedding, in training and "
            "in the saved model (SearchR3's setting)"
        },
    )
    compact_direct_prompt: bool = field(
        default=False,
        metadata={
            "help": "documents (and queries without reasoning) end with <|embed_token|> right after the text, in "
            "the user turn: 10 fewer tokens per text for SmolLM2 (saved with the model)"
        },
    )
    embedding_layers: int | None = field(
        default=None,
        metadata={
            "help": "the embedding is read after this many decoder layers (None: all), so documents run only "
            "those layers (saved with the model); the LM terms still read the last layer"
        },
    )
    no_repeat_ngram_size: int = field(
        default=0, metadata={"help": "repetition guard of the model's reasoning (saved with it; 0: off)"}
    )
    temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature"})
    triplet_margin: float = field(default=0.1, metadata={"help": "triplet margin (cosine)"})
    infonce_weight: float = field(default=1.0, metadata={"help": "weight of InfoNCE"})
    triplet_weight: float = field(default=1.0, metadata={"help": "weight of the triplet term"})
    lm_weight: float = field(default=0.1, metadata={"help": "weight of the answer-format LM cross-entropy"})
    kl_weight: float = field(default=0.1, metadata={"help": "weight of KL(base || model) on the answers"})
    format_weight: float = field(
        default=0.0, metadata={"help": "weight of the cross-entropy of <|embed_token|> where it ends the answer"}
    )
    reasoning_answers_only: bool = field(
        default=False,
        metadata={"help": "LM / KL / format learn only from reasoning answers, not 'The embedding is' (SearchR3Loss)"},
    )
    frozen_output_rows: bool = field(
        default=False,
        metadata={"help": "LM / KL / format leave the output embeddings (tied: the embed token's row) alone"},
    )
    mini_batch_size: int | None = field(default=None, metadata={"help": "gradient-cache mini-batch (None: off)"})
    eval_reasoning: bool = field(default=False, metadata={"help": "reason for dev queries (slow on CPU)"})


@dataclass
class SearchR3RLConfig(SearchR3TrainingConfig):
    """Stage 2: what to train with which environment; the trainer's knobs are TRL's ``GRPOConfig``."""

    model: str = field(default="search-r3", metadata={"help": "the search-r3 model to improve (name or folder)"})
    source: str = field(default="wordnet", metadata={"help": "training queries and corpus from this source"})
    train_queries: int = field(default=512, metadata={"help": "training queries drawn from its train split"})
    corpus_size: int = field(default=2000, metadata={"help": "their relevant documents plus distractors"})
    refresh_size: int = field(default=32, metadata={"help": "documents of the rolling slice re-encoded per step"})
    rebuild_every: int = field(default=0, metadata={"help": "steps between full corpus re-encodings (0: never)"})
    ranking_k: int = field(default=100, metadata={"help": "depth of the nDCG ranking reward"})
    ranking_weight: float = field(default=1.0, metadata={"help": "weight of the ranking reward"})
    format_weight: float = field(default=0.1, metadata={"help": "weight of the format reward"})
    eval_documents: int = field(default=500, metadata={"help": "dev documents (relevant ones included)"})
    eval_every: int = field(default=20, metadata={"help": "steps between dev evaluations (0: start and end only)"})


def parse_config(dataclass_types: tuple, default_config: str | Path, description: str, argv: list[str] | None = None):
    """Parses ``--config YAML`` and ``--field value`` overrides into the dataclasses (TRL's ``TrlParser``).

    Without ``--config`` the script's ``default_config`` is read, so a bare ``python train/X.py`` runs the
    default recipe on a CPU-only machine.
    """
    import sys

    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = TrlParser(
        dataclass_types,
        description=description,
        usage=f"%(prog)s [--config YAML (default: {default_config})] [--FIELD VALUE ...] [--resume true]",
    )
    if "--config" not in argv and not {"-h", "--help"} & set(argv):
        argv = ["--config", str(default_config), *argv]
    return parser.parse_args_and_config(argv)
