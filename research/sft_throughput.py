"""Training throughput of the release recipe's first part, before and after the CPU speed-ups, in one run.

    python research/sft_throughput.py [--steps 8] [--evaluate]

"before" is how the recipe trained until version 0.5.0: bf16 autocast as its YAML asks, and each column of a
batch (16 anchors, 16 positives, 16 negatives) in one padded forward pass. "after" is what ``train/sft.py``
does now: float32 where the CPU has no bfloat16 hardware (``config.drop_emulated_bf16``), and length-sorted
groups of ``TRAINING_ROWS_PER_PASS`` rows. Both train the same model from the same start on the same batches
(the recipe's own order, its 600 reasoning anchors included: the cached base-model reasoning is reused).
The first step of each is a warm-up and is not timed. ``--evaluate`` also times one dev evaluation of each
(200 WordNet queries against 2,000 documents, as the recipe evaluates every 50 steps).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from transformers import TrainerCallback

import st_search_r3.module as search_r3_module
from st_search_r3.training.config import SearchR3SFTConfig, native_cpu_bf16, parse_config
from st_search_r3.training.evaluation import dev_evaluator
from st_search_r3.training.losses import SearchR3Loss
from st_search_r3.training.sft_data import ROUTES, build_model, load_training_set

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from finetune_minilm import machine  # noqa: E402

RECIPE = Path(__file__).parents[1] / "train" / "configs" / "sft_all.yaml"
RESULTS = Path(__file__).parent / "results"


class StepTimes(TrainerCallback):
    def __init__(self) -> None:
        self.times, self.start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


def measure(name: str, bf16: bool, rows_per_pass: int, steps: int, evaluate: bool, output_dir: str) -> dict:
    config, args = parse_config(
        (SearchR3SFTConfig, SentenceTransformerTrainingArguments),
        RECIPE,
        "",
        ["--max_steps", str(steps + 1), "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", output_dir],
    )
    args.bf16, args.mixed_precision = bf16, "bf16" if bf16 else "no"
    search_r3_module.TRAINING_ROWS_PER_PASS = rows_per_pass
    torch.manual_seed(args.seed)
    model = build_model(config)
    train_dataset, _ = load_training_set(config, model, seed=args.seed)
    loss = SearchR3Loss(
        model, config.temperature, config.triplet_margin, lm_weight=config.lm_weight, kl_weight=config.kl_weight
    )
    args.router_mapping = {part: ROUTES[part] for part in train_dataset}
    timer = StepTimes()
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, callbacks=[timer]
    )
    trainer.train()
    seconds = sum(timer.times[1:])
    result = {
        "setting": name,
        "bf16_autocast": bf16,
        "rows_per_forward_pass": rows_per_pass,
        "timed_steps": len(timer.times) - 1,
        "seconds_per_step": seconds / (len(timer.times) - 1),
        "pairs_per_second": args.per_device_train_batch_size * (len(timer.times) - 1) / seconds,
        "losses": [round(entry["loss"], 4) for entry in trainer.state.log_history if "loss" in entry],
    }
    if evaluate:
        model.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            start = time.perf_counter()
            scores = dev_evaluator(config, config.eval_queries)(model)
            result["evaluation_seconds"] = time.perf_counter() - start
        result["evaluation_ndcg@10"] = next(v for k, v in scores.items() if k.endswith("ndcg@10"))
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per setting (after one warm-up step)")
    parser.add_argument("--evaluate", action="store_true", help="also time one dev evaluation per setting")
    parser.add_argument("--output", type=Path, default=RESULTS / "sft_throughput.json")
    options = parser.parse_args()
    after_bf16 = native_cpu_bf16()
    with tempfile.TemporaryDirectory() as folder:
        runs = [
            measure("before", True, 16, options.steps, options.evaluate, folder),
            measure("after", after_bf16, 8, options.steps, options.evaluate, folder),
        ]
    report = {
        "command": "python " + shlex.join(sys.argv),
        "recipe": str(RECIPE.relative_to(RECIPE.parents[2])),
        "hardware": f"{machine()}, {torch.get_num_threads()} threads, bf16 hardware: {native_cpu_bf16()}",
        "torch": torch.__version__,
        "runs": runs,
        "speedup_steps": runs[1]["pairs_per_second"] / runs[0]["pairs_per_second"],
    }
    if options.evaluate:
        report["speedup_evaluation"] = runs[0]["evaluation_seconds"] / runs[1]["evaluation_seconds"]
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
