"""The settings of both training stages: TRL-style dataclasses, parsed from YAML and the command line
(``TrlParser``) next to the trainer's own arguments."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.data.sources import HELD_OUT, data_dir

logger = logging.getLogger(__name__)


def refuse_held_out(sources: list[str]) -> None:
    """Raises ``ValueError`` when a source held out of all training (a test task only) is among ``sources``."""
    if HELD_OUT & set(sources):
        raise ValueError(f"{sorted(HELD_OUT & set(sources))}: held out of training (a test task only)")


@dataclass
class SearchR3TrainingConfig:
    """What both stages share: where the data is, the LoRA shape, dev evaluation and checkpoints."""

    data_dir: str | None = field(default=None, metadata={"help": "built data (default: $ST_SEARCH_R3_DATA)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (all linear layers)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    eval_task: str | None = field(
        default="wordnet", metadata={"help": "built source whose dev split is evaluated (None: no dev evaluation)"}
    )
    eval_data: str | None = field(
        default=None,
        metadata={"help": "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/dev.tsv) evaluated instead of eval_task"},
    )
    eval_queries: int = field(default=200, metadata={"help": "dev queries evaluated"})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "save a checkpoint at least this often"})
    resume: bool = field(
        default=False,
        metadata={"help": "continue from the last complete checkpoint in output_dir (or --resume_from_checkpoint)"},
    )

    def __post_init__(self) -> None:
        # The command line spells "none" as the YAML files do: --init_adapter null
        for name, value in vars(self).items():
            if value in ("null", "None"):
                setattr(self, name, None)

    def root(self) -> Path:
        return Path(self.data_dir) if self.data_dir else data_dir()


@dataclass
class SearchR3SFTConfig(SearchR3TrainingConfig):
    """Stage 1: what to train and with which loss; the trainer's knobs are ``SentenceTransformerTrainingArguments``.

    The defaults are the first part of the shipped recipe (``train/configs/sft_all.yaml``)."""

    base_model: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "causal LM: the packaged default, a path or a hub id"}
    )
    init_adapter: str | None = field(
        default=None,
        metadata={"help": "continue training this LoRA adapter folder (e.g. a run's final) instead of a new one"},
    )
    sources: list[str] = field(
        default_factory=lambda: ["wordnet", "debian", "pycode", "manpages", "infomanuals_core"],
        metadata={"help": "built training sets to mix (their train_triplets under data_dir), unless train_data is set"},
    )
    train_data: list[str] | None = field(
        default=None,
        metadata={
            "help": "your training sets instead of sources: JSONL/CSV/Parquet files, dataset folders or hub ids with "
            "columns anchor, positive[, negative] (or the first text columns in that order)"
        },
    )
    source_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "per training set, in order: how many times its triplets enter the mix before the shuffle "
            "(None: once each, so sets mix by size; 0.1 takes a random tenth, 2 every triplet twice)"
        },
    )
    max_train_pairs: int = field(default=4000, metadata={"help": "triplets drawn from the mixed training sets"})
    data_sha256: str | None = field(
        default=None,
        metadata={
            "help": "the sha256 of the built training splits the recipe was made on (see training.recipe), or of "
            "the --train_data files; training stops with an error when the data differs. None: no check"
        },
    )
    triplets_sha256: str | None = field(
        default=None,
        metadata={
            "help": "the sha256 of the mined training triplets the recipe was made on; a difference (mining ranks "
            "negatives with float arithmetic that differs between CPUs) is logged, not an error. None: no check"
        },
    )
    max_seq_length: int = field(default=192, metadata={"help": "longest prompt in tokens while training"})
    max_reasoning_tokens: int = field(default=64, metadata={"help": "reasoning budget of the trained model"})
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
        default=600,
        metadata={
            "help": "how many training anchors (the first ones) are trained as (query, reasoning) pairs; the other "
            "anchors embed without reasoning"
        },
    )
    fuse_direct_embedding: bool = field(
        default=False,
        metadata={
            "help": "query vectors with reasoning are fused with the query's direct embedding, in training and "
            "in the saved model (SearchR3's setting)"
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
    kl_weight: float = field(
        default=0.0,
        metadata={"help": "weight of KL(base || model) on the answers (a second, base forward pass: +30%% step time)"},
    )
    format_weight: float = field(
        default=0.0, metadata={"help": "weight of the cross-entropy of <|embed_token|> where it ends the answer"}
    )
    teacher_model: str | None = field(
        default=None,
        metadata={
            "help": "a SentenceTransformer (name or folder; all-MiniLM-L6-v2 comes from its PyPI package) that embeds "
            "every training text once; the distill term teaches its in-batch similarity distributions"
        },
    )
    distill_weight: float = field(
        default=0.0, metadata={"help": "weight of KL(teacher || model) over each anchor's candidates (0: off)"}
    )
    teacher_temperature: float = field(default=0.05, metadata={"help": "temperature of the teacher's cosines"})
    gather_across_devices: bool = field(
        default=True,
        metadata={
            "help": "on several processes, InfoNCE (and distill) score each anchor against every process's positives "
            "and negatives, so N processes train as one N times larger batch; one process: no effect"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.distill_weight) != bool(self.teacher_model):
            raise ValueError("distill_weight > 0 and teacher_model go together (the distill term needs a teacher)")
        weights, sets = self.source_weights, self.train_data or self.sources
        if not self.train_data:
            refuse_held_out(self.sources)
        if weights is not None and (len(weights) != len(sets) or any(w < 0 for w in weights)):
            raise ValueError(f"source_weights needs one weight >= 0 per training set {sets}, got {weights}")
        if self.max_train_pairs < 1 or self.reasoning_queries < 0:
            raise ValueError("max_train_pairs must be >= 1 and reasoning_queries >= 0")

    # See parse_config: the default recipe's settings of the built data, undone for --train_data.
    own_data_settings: ClassVar[dict[str, str]] = {
        "data_sha256": "null",
        "triplets_sha256": "null",
        "reasoning_queries": "0",
        "eval_task": "null",
        "eval_strategy": "no",
    }


@dataclass
class SearchR3RLConfig(SearchR3TrainingConfig):
    """Stage 2: what to train with which environment; the trainer's knobs are TRL's ``GRPOConfig``."""

    model: str = field(default="search-r3", metadata={"help": "the search-r3 model to improve (name or folder)"})
    source: str = field(default="wordnet", metadata={"help": "training queries and corpus from this built source"})
    train_data: str | None = field(
        default=None,
        metadata={"help": "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv) to use instead of source"},
    )
    train_queries: int = field(default=512, metadata={"help": "training queries drawn from its train split"})
    corpus_size: int = field(default=2000, metadata={"help": "their relevant documents plus distractors"})
    refresh_size: int = field(default=32, metadata={"help": "documents of the rolling slice re-encoded per step"})
    ranking_k: int = field(default=100, metadata={"help": "depth of the nDCG ranking reward"})
    ranking_weight: float = field(default=1.0, metadata={"help": "weight of the ranking reward"})
    format_weight: float = field(default=0.1, metadata={"help": "weight of the format reward"})
    length_weight: float = field(
        default=0.0,
        metadata={"help": "weight of the length reward (minus the share of the reasoning budget used; 0: off)"},
    )
    eval_documents: int = field(default=500, metadata={"help": "dev documents (relevant ones included)"})
    eval_every: int = field(default=20, metadata={"help": "steps between dev evaluations (0: start and end only)"})

    # See parse_config: the default recipe's settings of the built data, undone for --train_data.
    own_data_settings: ClassVar[dict[str, str]] = {"eval_task": "null", "eval_strategy": "no"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.train_data and self.source in HELD_OUT:
            raise ValueError(f"{self.source!r}: held out of training (a test task only)")


@dataclass
class SearchR3StopConfig(SearchR3TrainingConfig):
    """When to think: fit the ``<|embed_token|>`` output row of a trained model (``train/stop.py``), all else
    frozen; see :mod:`st_search_r3.training.stop_training`."""

    model: str = field(
        default="runs/sft_info/final",
        metadata={"help": "the trained adapter folder (train/sft.py's final, or the shipped src/st_search_r3/weights)"},
    )
    sources: list[str] = field(
        default_factory=lambda: ["wordnet", "debian", "pycode", "manpages", "infomanuals", "faqs"],
        metadata={"help": "built sources whose train splits give the queries"},
    )
    queries_per_source: int = field(default=150, metadata={"help": "training queries drawn per source"})
    documents_per_source: int = field(
        default=1000, metadata={"help": "their relevant documents plus distractors, ranked for the gain"}
    )
    sentences: int = field(default=1, metadata={"help": "a reasoning is cut (and taught to stop) after this many"})
    token_cost: float = field(default=0.002, metadata={"help": "DCG@100 a reasoning token must gain to pay for itself"})
    decision_weight: float = field(default=1.0, metadata={"help": "weight of the first-token decision term"})
    l2: list[float] = field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0],
        metadata={"help": "penalties on the row's move, one chosen by the gain taken on held-out training queries"},
    )
    holdout_fraction: float = field(default=0.25, metadata={"help": "training queries held out to choose l2"})
    max_reasoning_tokens: int = field(default=64, metadata={"help": "reasoning budget while collecting"})
    output_dir: str = field(default="runs/stop_head", metadata={"help": "the model folder written (and its record)"})
    seed: int = field(default=0, metadata={"help": "draw of the queries and of the held-out part"})

    def __post_init__(self) -> None:
        super().__post_init__()
        refuse_held_out(self.sources)
        if self.sentences < 1 or self.queries_per_source < 2 or not 0 < self.holdout_fraction < 1:
            raise ValueError("sentences >= 1, queries_per_source >= 2 and 0 < holdout_fraction < 1 are needed")


@dataclass
class SearchR3ReaderConfig(SearchR3TrainingConfig):
    """Reasoning that reads: train the reader adapter of a trained model (``train/read.py``), all else frozen; see
    :mod:`st_search_r3.training.reader_training`."""

    model: str = field(
        default="runs/sft_info/final",
        metadata={
            "help": "the trained model folder the reader reads with (its adapter is merged first; the shipped one is "
            "src/st_search_r3/weights)"
        },
    )
    sources: list[str] = field(
        default_factory=lambda: ["wordnet", "debian", "pycode", "manpages", "infomanuals", "faqs"],
        metadata={"help": "built sources whose train splits give the queries"},
    )
    queries_per_source: int = field(default=400, metadata={"help": "training queries drawn per source"})
    documents_per_source: int = field(
        default=2000, metadata={"help": "their relevant documents plus distractors: the first search's corpus"}
    )
    read_top_k: int = field(default=3, metadata={"help": "passages of the first search the model reads"})
    read_passage_tokens: int = field(default=64, metadata={"help": "tokens kept of each passage"})
    read_fuse_direct: bool = field(
        default=True, metadata={"help": "train (and search with) the read vector plus the direct vector"}
    )
    shuffle_passages: bool = field(
        default=True,
        metadata={
            "help": "show each query's passages in a random order, so that the reader judges them by their text: in "
            "rank order the first one is the relevant one two times in three, and pointing at it is all it learns"
        },
    )
    lexical_weight: float = field(
        default=0.0,
        metadata={
            "help": "BM25's share in the first search and in the scores the loss ranks by, as search(..., "
            "lexical_weight) uses it: the reader learns what the shared words do not already say (0: cosine only)"
        },
    )
    temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature"})
    learning_rate: float = field(default=2.0e-4, metadata={"help": "peak learning rate of the reader's LoRA"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of the steps spent warming up"})
    batch_size: int = field(default=16, metadata={"help": "queries per step"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training queries"})
    bf16: bool = field(
        default=True,
        metadata={
            "help": "bfloat16 autocast on the CPU (the weights stay float32); float32 where the CPU has no bfloat16 "
            "hardware, on which it is emulated several times slower"
        },
    )
    output_dir: str = field(default="runs/reader", metadata={"help": "checkpoints, the first pass and final/"})
    seed: int = field(default=0, metadata={"help": "draw of the queries and their order"})

    def __post_init__(self) -> None:
        super().__post_init__()
        refuse_held_out(self.sources)
        if self.read_top_k < 1 or self.read_passage_tokens < 1 or self.batch_size < 1:
            raise ValueError("read_top_k, read_passage_tokens and batch_size must be >= 1")
        if not self.lexical_weight >= 0:
            raise ValueError(f"lexical_weight must be >= 0, got {self.lexical_weight}")


def parse_config(dataclass_types: tuple, default_config: str | Path, description: str, argv: list[str] | None = None):
    """Parses ``--config YAML`` and ``--field value`` overrides into the dataclasses (TRL's ``TrlParser``): the
    config and the trainer's arguments, or the config alone when ``dataclass_types`` holds one.

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
        argv = ["--config", str(default_config), *argv, *own_data_arguments(dataclass_types[0], argv)]
    parsed = parser.parse_args_and_config(argv)
    if len(parsed) == 1:  # a script without a trainer (train/stop.py)
        return parsed[0]
    config, args = parsed
    drop_emulated_bf16(args)
    return config, args


def own_data_arguments(config_type, argv: list[str]) -> list[str]:
    """What ``--train_data`` implies when the default recipe is read (no ``--config``): the recipe is made on the
    built sources, so its pin of their files (``data_sha256``), its reasoning targets (``reasoning_queries``: a model
    trained without them is saved with reasoning off) and its dev evaluation of a built task do not apply to your
    data; only ``--eval_data`` is evaluated, if given. A setting given on the command line is kept."""
    given = {argument.split("=", 1)[0] for argument in argv if argument.startswith("--")}
    if "--train_data" not in given:
        return []
    settings = dict(getattr(config_type, "own_data_settings", {}))
    if "--eval_data" in given:
        settings.pop("eval_task", None)
        settings.pop("eval_strategy", None)
    return [item for name, value in settings.items() if f"--{name}" not in given for item in (f"--{name}", value)]


def native_cpu_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 in hardware: AVX512-BF16 or AMX on x86, the BF16 extension on Arm.
    Where ``cpuinfo`` cannot be read, there is no telling, and the answer is yes."""
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return True
    return re.search(r"\b(avx512_bf16|amx_bf16|bf16)\b", flags) is not None


def cpu_bf16(requested: bool) -> bool:
    """Whether a CPU run takes the ``requested`` bf16 autocast: not where the CPU has no bfloat16 hardware.

    oneDNN then emulates bfloat16: one step of the release recipe took 32 s in bf16 autocast against 11 s in
    float32 on a 2-core Xeon without AVX512-BF16 (a reader step did not finish in five minutes on an AMD EPYC
    without it), and float32 is the more precise of the two. The CPU recipes ask for bf16 because it is the faster
    one where the hardware has it (AMD EPYC Zen 4, Xeon Sapphire Rapids).
    """
    if requested and not native_cpu_bf16():
        logger.warning("The CPU has no bfloat16 hardware (AVX512-BF16, AMX): training in float32, not bf16 autocast")
        return False
    return requested


def drop_emulated_bf16(args) -> None:
    """Turns the trainer arguments' ``bf16`` autocast off for a CPU run where it is emulated (:func:`cpu_bf16`)."""
    if getattr(args, "bf16", False) and args.device.type == "cpu" and not cpu_bf16(True):
        args.bf16 = False
        args.mixed_precision = "no"
