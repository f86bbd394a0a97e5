"""Stage 1, supervised: the pieces ``train/sft.py`` puts together (config, model, data, evaluator, callbacks)."""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from transformers import TrainerCallback

from st_search_r3.atomic import staged_folder
from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.data.build import data_dir
from st_search_r3.data.reasoning_targets import reasoning_targets
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.module import SearchR3
from st_search_r3.reasoning_cache import cache_reasoning

logger = logging.getLogger(__name__)


@dataclass
class SearchR3SFTConfig:
    """What to train and with which loss; the trainer's own knobs are ``SentenceTransformerTrainingArguments``."""

    base_model: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "causal LM: the packaged default, a path or a hub id"}
    )
    data_dir: str | None = field(default=None, metadata={"help": "built data (default: $ST_SEARCH_R3_DATA)"})
    sources: list[str] = field(
        default_factory=lambda: ["wordnet", "debian", "pycode"], metadata={"help": "training sets to mix"}
    )
    max_train_pairs: int = field(default=12_000, metadata={"help": "triplets drawn from the mixed training sets"})
    max_seq_length: int = field(default=256, metadata={"help": "longest prompt in tokens while training"})
    max_reasoning_tokens: int = field(default=128, metadata={"help": "reasoning budget of the trained model"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (all linear layers)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
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
            "relevant document, st_search_r3.data.reasoning_targets) or 'base' (the base model's own greedy "
            "reasoning, generated once into the reasoning cache)"
        },
    )
    init_adapter: str | None = field(
        default=None,
        metadata={"help": "continue training this LoRA adapter folder (e.g. a run's final) instead of a new one"},
    )
    temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature"})
    triplet_margin: float = field(default=0.1, metadata={"help": "triplet margin (cosine)"})
    infonce_weight: float = field(default=1.0, metadata={"help": "weight of InfoNCE"})
    triplet_weight: float = field(default=1.0, metadata={"help": "weight of the triplet term"})
    lm_weight: float = field(default=0.1, metadata={"help": "weight of the answer-format LM cross-entropy"})
    kl_weight: float = field(default=0.1, metadata={"help": "weight of KL(base || model) on the answers"})
    mini_batch_size: int | None = field(default=None, metadata={"help": "gradient-cache mini-batch (None: off)"})
    eval_task: str = field(default="wordnet", metadata={"help": "dev split evaluated during training"})
    eval_queries: int = field(default=200, metadata={"help": "dev queries evaluated (all of its corpus)"})
    eval_reasoning: bool = field(default=False, metadata={"help": "reason for dev queries (slow on CPU)"})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "save a checkpoint at least this often"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in output_dir"})

    def root(self) -> Path:
        return Path(self.data_dir) if self.data_dir else data_dir()

    def reasoning_cache(self) -> Path:
        """Where the base model's reasoning for training queries is kept (per base model and budget)."""
        return self.root() / "reasoning" / f"{Path(self.base_model).name}-{self.max_reasoning_tokens}.jsonl"


def build_model(config: SearchR3SFTConfig) -> SentenceTransformer:
    """SearchR3 on the base LLM, with LoRA on every linear layer and the embed-token row trainable
    (a new adapter, or ``config.init_adapter`` trained further)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    module = SearchR3(
        config.base_model,
        max_reasoning_tokens=config.max_reasoning_tokens,
        max_seq_length=config.max_seq_length,
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
    # Recorded in the adapter's config: the name, not this machine's cache path, finds the base again.
    module.auto_model.peft_config["default"].base_model_name_or_path = config.base_model
    return SentenceTransformer(modules=[module], similarity_fn_name="cosine")


ROUTES = {
    # Anchors with reasoning are (query, reasoning) pairs: the query prompt, the reasoning, the token.
    "reasoning": {"anchor": "query", "positive": "document", "negative": "document"},
    # The others take the reasoning-off query format, which is the document format.
    "direct": {"anchor": "document", "positive": "document", "negative": "document"},
}


def load_training_set(config: SearchR3SFTConfig, tokenizer, seed: int = 0) -> DatasetDict:
    """The training triplets, split into ``"reasoning"`` and ``"direct"`` anchors (see :data:`ROUTES`).

    The first ``config.reasoning_queries`` anchors get their reasoning: keywords condensed from the relevant
    document (``config.reasoning_targets == "keywords"``), or the base model's greedy reasoning (generated
    now when missing from :meth:`SearchR3SFTConfig.reasoning_cache`, which takes about a second per query).
    Each batch comes from one of the two sets, in proportion to their sizes. Documents are cut to
    ``config.max_document_tokens`` tokens of ``tokenizer``.
    """
    triplets = load_triplets(config, seed)
    if config.max_document_tokens:
        triplets = triplets.map(
            lambda rows: {
                column: cut_to_tokens(rows[column], tokenizer, config.max_document_tokens)
                for column in ("positive", "negative")
            },
            batched=True,
            desc="cutting documents",
        )
    with_reasoning = triplets.select(range(min(config.reasoning_queries, len(triplets))))
    direct = triplets.select(range(len(with_reasoning), len(triplets))).select_columns(["anchor", "positive", "negative"])
    parts = {"direct": direct} if len(direct) else {}
    if len(with_reasoning):
        if config.reasoning_targets == "keywords":
            pairs = [list(pair) for pair in zip(with_reasoning["anchor"], with_reasoning["reasoning"])]
        elif config.reasoning_targets == "base":
            # bf16 weights reason about twice as fast on CPU; these texts are data, not vectors to compare.
            module = SearchR3(config.base_model, max_reasoning_tokens=config.max_reasoning_tokens, precision="bfloat16")
            reasoning = cache_reasoning(module, with_reasoning["anchor"], config.reasoning_cache())
            del module
            pairs = [[query, reasoning[query]] for query in with_reasoning["anchor"]]
        else:
            raise ValueError(f"reasoning_targets must be 'keywords' or 'base', got {config.reasoning_targets!r}")
        parts["reasoning"] = with_reasoning.remove_columns("anchor").add_column("anchor", pairs)
        parts["reasoning"] = parts["reasoning"].select_columns(["anchor", "positive", "negative"])
    return DatasetDict(parts)


def cut_to_tokens(texts: list[str], tokenizer, max_tokens: int) -> list[str]:
    """Each text cut to its first ``max_tokens`` tokens (texts already short enough are kept as they are)."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [text if len(row) <= max_tokens else tokenizer.decode(row[:max_tokens]) for text, row in zip(texts, ids)]


def load_triplets(config: SearchR3SFTConfig, seed: int = 0) -> Dataset:
    """``(anchor, positive, negative, reasoning)`` rows mixed from the sources, shuffled, capped; ``reasoning``
    is the keyword reasoning condensed from the positive (:mod:`st_search_r3.data.reasoning_targets`)."""
    parts = []
    for source in config.sources:
        folder = config.root() / source / "train_triplets"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: run `python -m st_search_r3.data.build` first")
        triplets = load_from_disk(str(folder)).select_columns(["anchor", "positive", "negative"])
        targets = reasoning_targets(source, triplets["anchor"], triplets["positive"])
        parts.append(triplets.add_column("reasoning", targets))
    mixed = concatenate_datasets(parts).shuffle(seed=seed)
    return mixed.select(range(min(config.max_train_pairs, len(mixed))))


def data_fingerprint(config: SearchR3SFTConfig) -> dict[str, str]:
    """The sha256 of every training file, from the build manifests, for the run record."""
    fingerprint = {}
    for source in config.sources:
        manifest = json.loads((config.root() / source / "manifest.json").read_text())
        fingerprint.update(
            {f"{source}/{name}": digest for name, digest in manifest["files"].items() if name.startswith("train")}
        )
    return fingerprint


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` that was fully written: the trainer writes ``trainer_state.json`` last,
    so a checkpoint cut short by a crash is skipped instead of breaking the resume."""
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]), reverse=True)
    return next((str(c) for c in checkpoints if (c / "trainer_state.json").is_file()), None)


def save_atomically(model: SentenceTransformer, folder: str | Path, extra_files: dict[str, str] | None = None) -> None:
    """Saves the model (and ``extra_files``: name to text) into ``<folder>.tmp``, then renames it into
    place: ``folder`` is either complete or absent."""
    with staged_folder(folder) as staging:
        model.save(str(staging))
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)


class DevRetrievalEvaluator(InformationRetrievalEvaluator):
    """nDCG@10 on a dev split, with the query reasoning switched on or off for the evaluation only."""

    def __init__(self, split: RetrievalSplit, name: str, reasoning: bool) -> None:
        relevant = {q: set(docs) for q, docs in split.qrels.items()}
        super().__init__(
            split.queries,
            split.corpus,
            relevant,
            name=name,
            ndcg_at_k=[10],
            accuracy_at_k=[1, 10],
            precision_recall_at_k=[10],
            map_at_k=[10],
            mrr_at_k=[10],
            batch_size=16,
        )
        self.reasoning = reasoning

    def __call__(self, model, *args, **kwargs):
        previous = model[0].reasoning
        model[0].reasoning = self.reasoning
        try:
            return super().__call__(model, *args, **kwargs)
        finally:
            model[0].reasoning = previous


def dev_evaluator(config: SearchR3SFTConfig) -> DevRetrievalEvaluator:
    split = RetrievalSplit.load(config.root() / config.eval_task / "dev")
    split = split.sample(config.eval_queries, len(split.corpus), seed=0)
    return DevRetrievalEvaluator(split, name=f"{config.eval_task}-dev", reasoning=config.eval_reasoning)


class CheckpointEveryMinutes(TrainerCallback):
    """Asks the trainer to save whenever ``minutes`` have passed since the last save."""

    def __init__(self, minutes: float) -> None:
        self.seconds = 60 * minutes
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.last >= self.seconds:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
        return control


class CurvesCallback(TrainerCallback):
    """Writes every logged value to ``curves.jsonl`` and redraws ``curves.png``, one panel per entry of
    ``panels`` (title -> the ending of the logged keys it plots; default: loss and dev nDCG@10)."""

    def __init__(self, output_dir: str, panels: dict[str, str] | None = None) -> None:
        self.folder = Path(output_dir)
        self.panels = panels or {"training loss": "loss", "dev nDCG@10": "ndcg@10"}

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "curves.jsonl", "a") as handle:
            handle.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")
        plot_curves(self.folder / "curves.jsonl", self.folder / "curves.png", self.panels)


def plot_curves(log_path: Path, png_path: Path, panels: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(log_path)]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, (title, ending) in zip(axes[0], panels.items()):
        points = [(r["step"], v) for r in rows for k, v in r.items() if k == ending or k.endswith("_" + ending)]
        if len(points) >= 30:  # per-step values of a few queries are noisy: draw a running mean over them
            steps, values = zip(*points)
            axis.plot(steps, values, alpha=0.35, label="per step")
            window = max(5, len(points) // 10)
            mean = [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
            axis.plot(steps, mean, label=f"mean of the last {window}")
            axis.legend(fontsize=8)
        elif points:
            axis.plot(*zip(*points), marker="o")
        axis.set(title=title, xlabel="step")
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
