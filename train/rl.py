"""Stage 2: GRPO on search-r3's reasoning, rewarded by retrieval in a cached corpus (LoRA).

python train/rl.py --config train/configs/rl.yaml [--any_field value ...] [--resume true]
"""

import json
import logging
import time
from pathlib import Path

from peft import LoraConfig
from sentence_transformers import SentenceTransformer
from trl import GRPOConfig, TrlParser

from st_search_r3.rl import DevEvaluationCallback, SearchR3RLConfig, build_corpus_index, load_rl_data
from st_search_r3.rl_trainer import CORPUS_INDEX_DIR, SearchR3GRPOTrainer
from st_search_r3.sft import CheckpointEveryMinutes, CurvesCallback, last_complete_checkpoint, save_atomically

logger = logging.getLogger("train.rl")
CURVES = {"reward": "reward", "corpus drift (1 - cos)": "corpus/drift", "dev nDCG@10 (reasoning)": "dev_ndcg@10"}


def main() -> None:
    config, args = TrlParser((SearchR3RLConfig, GRPOConfig)).parse_args_and_config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    model = SentenceTransformer(config.model, trust_remote_code=True)
    train_dataset, corpus = load_rl_data(config, model, seed=args.seed)
    corpus_index = build_corpus_index(config, model, corpus)
    checkpoint = last_complete_checkpoint(args.output_dir) if config.resume else None
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)
        if (Path(checkpoint) / CORPUS_INDEX_DIR).is_dir():  # else the first step re-encodes the corpus
            corpus_index.load(Path(checkpoint) / CORPUS_INDEX_DIR)
            logger.info("Loaded the corpus cache of %s", checkpoint)
    args.reward_weights = [config.ranking_weight, config.format_weight]
    dev = DevEvaluationCallback(config, model)
    trainer = SearchR3GRPOTrainer(
        model,
        corpus_index,
        args,
        train_dataset,
        ranking_k=config.ranking_k,
        peft_config=LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        callbacks=[CheckpointEveryMinutes(config.checkpoint_minutes), CurvesCallback(args.output_dir, CURVES), dev],
    )
    dev.trainer = trainer
    first_step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    model[0].auto_model = trainer.model  # the PEFT model: the folder gets the adapter only
    record = {
        "config": vars(config),
        "grpo_arguments": args.to_dict(),
        "steps": trainer.state.global_step,
        "train_seconds_this_run": seconds,
        "seconds_per_step": seconds / max(1, trainer.state.global_step - first_step),
        "log_history": trainer.state.log_history,
    }
    save_atomically(
        model, f"{args.output_dir}/final", {"training_record.json": json.dumps(record, indent=2, default=str)}
    )


if __name__ == "__main__":
    main()
