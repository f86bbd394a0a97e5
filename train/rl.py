"""Stage 2: GRPO on search-r3's reasoning, rewarded by retrieval in a cached corpus (LoRA).

python train/rl.py [--config train/configs/rl.yaml] [--any_field value ...] [--resume true]
"""

import logging
from pathlib import Path

from accelerate.utils import gather_object
from peft import LoraConfig
from sentence_transformers import SentenceTransformer
from trl import GRPOConfig

from st_search_r3.resolving import resolve_model
from st_search_r3.training.callbacks import CheckpointEveryMinutes, CurvesCallback, DevEvaluationCallback
from st_search_r3.training.checkpoints import digest, resume_checkpoint, train_and_save
from st_search_r3.training.config import SearchR3RLConfig, parse_config
from st_search_r3.training.evaluation import dev_evaluator
from st_search_r3.training.grpo_trainer import CORPUS_INDEX_DIR, SearchR3GRPOTrainer
from st_search_r3.training.rl_data import build_corpus_index, load_rl_data

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "rl.yaml"
CURVES = {"reward": "reward", "corpus drift (1 - cos)": "corpus/drift", "dev nDCG@10 (reasoning)": "dev_ndcg@10"}
logger = logging.getLogger("train.rl")


def main() -> None:
    config, args = parse_config((SearchR3RLConfig, GRPOConfig), DEFAULT_CONFIG, __doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    model = SentenceTransformer(resolve_model(config.model), trust_remote_code=True)
    train_dataset, corpus = load_rl_data(config, model, seed=args.seed)
    corpus_index = build_corpus_index(config, model, corpus)
    checkpoint = resume_checkpoint(config, args)
    if checkpoint and (Path(checkpoint) / CORPUS_INDEX_DIR).is_dir():  # else the first step re-encodes the corpus
        corpus_index.load(Path(checkpoint) / CORPUS_INDEX_DIR)
        logger.info("Loaded the corpus cache of %s", checkpoint)
    args.reward_weights = [config.ranking_weight, config.format_weight, config.length_weight]
    evaluator = dev_evaluator(config, config.eval_queries, config.eval_documents, reasoning=True)
    dev = DevEvaluationCallback(evaluator, model, config.eval_every) if evaluator is not None else None
    callbacks = [CheckpointEveryMinutes(config.checkpoint_minutes), CurvesCallback(args.output_dir, CURVES)]
    trainer = SearchR3GRPOTrainer(
        model,
        corpus_index,
        args,
        train_dataset,
        ranking_k=config.ranking_k,
        peft_config=LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        callbacks=callbacks + ([dev] if dev else []),
    )
    if dev is not None:
        dev.trainer = trainer  # the dev evaluation logs through the trainer
    record = {"grpo_arguments": args.to_dict()}

    def corpus_per_rank() -> dict:  # the cached corpus must be the same on every process
        return {"corpus_sha256_per_rank": gather_object([digest(corpus_index.vectors)])}

    train_and_save(trainer, model, config, args, checkpoint, record, unit="completions", after_training=corpus_per_rank)


if __name__ == "__main__":
    main()
